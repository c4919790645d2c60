package s3test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Server is a versitygw process, for benchmarks, whose requests are
// counted from its access log.
type Server struct {
	Endpoint string
	Requests atomic.Int64 // requests served so far
	cmd      *exec.Cmd
	done     chan struct{}
}

// StartServer starts versitygw on a free loopback port with keep-alive,
// storing under dir/s3, exports the AWS credentials for it, and creates
// bucket. Stop ends it.
func StartServer(ctx context.Context, dir, bucket string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	root := filepath.Join(dir, "s3")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	s := &Server{Endpoint: "http://" + addr, done: make(chan struct{})}
	// Keep-alive, as real S3 endpoints do (versitygw closes every
	// connection by default).
	s.cmd = exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--port", addr,
		"--keep-alive", "posix", root)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "| vgw |") {
				s.Requests.Add(1)
			}
		}
		io.Copy(io.Discard, out)
	}()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("versitygw did not answer on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	os.Setenv("AWS_REGION", Region)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := Client(s.Endpoint).CreateBucket(cctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("create bucket: %w", err)
	}
	return s, nil
}

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	s.cmd.Process.Kill() // the pid of the process we started
	s.cmd.Wait()
	<-s.done
}
