// Package s3test starts a real S3-compatible server (versitygw, installed by
// scripts/install-s3-server.sh) for tests.
//
// The binary is taken from $VERNEUIL_VERSITYGW, else from
// <repo>/.cache/tools/versitygw. When it is missing, tests are skipped only
// if the CI environment variable is unset; under CI (CI=true) they fail, so
// that CI never silently skips the S3 tests.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	// AccessKey and SecretKey are the test server's credentials. Start
	// exports them as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
	AccessKey = "testak"
	SecretKey = "testsk"
	// Region is exported as AWS_REGION.
	Region = "us-east-1"
	// Bucket is the bucket Start creates.
	Bucket = "verneuil-test"
)

// Binary returns the path of the versitygw binary, or an error saying how to
// install it.
func Binary() (string, error) {
	if p := os.Getenv("VERNEUIL_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("VERNEUIL_VERSITYGW: %w", err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, ".cache", "tools", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw not installed (run scripts/install-s3-server.sh or set VERNEUIL_VERSITYGW): %w", err)
	}
	return p, nil
}

// repoRoot finds the module root above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start starts a versitygw server on a free loopback port with an empty
// posix root in a temporary directory, creates Bucket, points the AWS
// environment variables at the server's credentials, and stops the server
// when the test ends. It returns the endpoint URL and the bucket name.
//
// Start uses t.Setenv, so tests that call it cannot be parallel.
func Start(t testing.TB) (endpoint, bucket string) {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if _, ci := os.LookupEnv("CI"); ci {
			t.Fatalf("S3 test server required under CI: %v", err)
		}
		t.Skipf("skipping S3 test: %v", err)
	}
	setEnv(t)

	var lastErr error
	for range 3 { // the free port may be taken before the server binds it
		endpoint, err := start(t, bin)
		if err == nil {
			createBucket(t, endpoint, Bucket)
			return endpoint, Bucket
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return "", ""
}

// setEnv isolates the AWS configuration chain from the developer's own
// settings and points it at the test credentials.
func setEnv(t testing.TB) {
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
}

// syncBuffer collects the server's output for failure messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(t testing.TB, bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	out := &syncBuffer{}
	cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--port", addr, "posix", dir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Kill() // by the pid of the process we started
		<-exited
	}

	endpoint := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			return "", fmt.Errorf("versitygw exited early (%v): %s", waitErr, out)
		default:
		}
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close() // any HTTP answer (403 without credentials) means it is up
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("versitygw did not answer on %s: %v; output: %s", addr, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out)
		}
	})
	return endpoint, nil
}

// Client returns an S3 client for the test server, for tests that need to
// inspect or arrange the bucket directly.
func Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     Region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func createBucket(t testing.TB, endpoint, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Client(endpoint).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s at %s: %v", bucket, endpoint, err)
	}
}
