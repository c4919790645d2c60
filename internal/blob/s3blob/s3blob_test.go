package s3blob_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/blobtest"
	_ "github.com/verneuil-go/verneuil/internal/blob/s3blob"
	"github.com/verneuil-go/verneuil/internal/blob/s3test"
)

func open(t *testing.T, url, endpoint string) blob.Store {
	t.Helper()
	s, err := blob.Open(t.Context(), url, blob.Options{Endpoint: endpoint, PathStyle: true})
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	var n atomic.Int64
	// Each subtest gets its own prefix in the one bucket.
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return open(t, fmt.Sprintf("s3://%s/conformance/%d", bucket, n.Add(1)), endpoint)
	})
}

func TestConformanceNoPrefix(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	blobtest.Run(t, func(t *testing.T) blob.Store {
		// Each subtest gets a fresh bucket, as there is no prefix.
		cli := s3test.Client(endpoint)
		b := fmt.Sprintf("%s-%d", bucket, time.Now().UnixNano())
		if _, err := cli.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
		return open(t, "s3://"+b, endpoint)
	})
}

func TestPrefixIsolation(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	ctx := t.Context()
	a := open(t, "s3://"+bucket+"/a/", endpoint)
	ab := open(t, "s3://"+bucket+"/ab", endpoint)
	root := open(t, "s3://"+bucket, endpoint)
	if err := a.Put(ctx, "k", []byte("in a")); err != nil {
		t.Fatal(err)
	}
	if err := ab.Put(ctx, "k", []byte("in ab")); err != nil {
		t.Fatal(err)
	}
	if keys, err := a.List(ctx, ""); err != nil || len(keys) != 1 || keys[0] != "k" {
		t.Fatalf("a.List = %q, %v", keys, err)
	}
	if got, err := root.Get(ctx, "a/k"); err != nil || string(got) != "in a" {
		t.Fatalf("root.Get(a/k) = %q, %v", got, err)
	}
	if keys, err := root.List(ctx, ""); err != nil || strings.Join(keys, ",") != "a/k,ab/k" {
		t.Fatalf("root.List = %q, %v", keys, err)
	}
	if got, want := a.String(), "s3://"+bucket+"/a/ at "+endpoint; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func checkPermanent(t *testing.T, what string, err error, mention string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if !errors.Is(err, blob.ErrPermanent) {
		t.Fatalf("%s: error %v does not wrap blob.ErrPermanent", what, err)
	}
	if errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("%s: error %v wraps blob.ErrNotFound", what, err)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("%s: error %q does not mention %q", what, err, mention)
	}
	t.Logf("%s: %v", what, err)
}

func TestWrongBucket(t *testing.T) {
	endpoint, _ := s3test.Start(t)
	ctx := t.Context()
	s := open(t, "s3://no-such-bucket/p", endpoint)
	err := s.Put(ctx, "k", []byte("x"))
	checkPermanent(t, "Put", err, `bucket "no-such-bucket" does not exist`)
	_, err = s.Get(ctx, "k")
	checkPermanent(t, "Get", err, `bucket "no-such-bucket"`)
	_, _, err = s.GetVersioned(ctx, "k")
	checkPermanent(t, "GetVersioned", err, `bucket "no-such-bucket"`)
	_, err = s.GetRange(ctx, "k", 0, 10)
	checkPermanent(t, "GetRange", err, `bucket "no-such-bucket"`)
	_, err = s.Exists(ctx, "k")
	checkPermanent(t, "Exists", err, `bucket "no-such-bucket"`)
	_, err = s.List(ctx, "")
	checkPermanent(t, "List", err, `bucket "no-such-bucket"`)
	err = s.PutIf(ctx, "k", []byte("x"), "")
	checkPermanent(t, "PutIf", err, `bucket "no-such-bucket"`)
	err = s.PutIf(ctx, "k", []byte("x"), `"etag"`)
	checkPermanent(t, "PutIf(version)", err, `bucket "no-such-bucket"`)
	err = s.Delete(ctx, "k", "k2")
	checkPermanent(t, "Delete", err, "no-such-bucket")
}

func TestWrongCredentials(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	ctx := t.Context()
	good := open(t, "s3://"+bucket, endpoint)
	if err := good.Put(ctx, "k", []byte("x")); err != nil {
		t.Fatal(err)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	s := open(t, "s3://"+bucket, endpoint)
	checkPermanent(t, "Put with a wrong secret", s.Put(ctx, "k", []byte("y")), "signature")
	_, err := s.Get(ctx, "k")
	checkPermanent(t, "Get with a wrong secret", err, "signature")
	_, err = s.Exists(ctx, "k")
	checkPermanent(t, "Exists with a wrong secret", err, bucket)
	if strings.Contains(err.Error(), "wrong-secret") || strings.Contains(err.Error(), s3test.SecretKey) {
		t.Fatalf("error leaks the secret: %v", err)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "unknown-key")
	s = open(t, "s3://"+bucket, endpoint)
	checkPermanent(t, "Put with an unknown access key", s.Put(ctx, "k", []byte("y")), "access key")
}

func TestUnreachableEndpoint(t *testing.T) {
	// A port that was free a moment ago: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	s := open(t, "s3://bucket/p", endpoint)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Put(ctx, "k", []byte("x"))
	if err == nil {
		t.Fatal("Put to a closed port succeeded")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Put took %v to fail (SDK retries not disabled?)", d)
	}
	if errors.Is(err, blob.ErrPermanent) || errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrPrecondition) {
		t.Fatalf("unreachable endpoint classified as %v, want transient", err)
	}
	if !strings.Contains(err.Error(), endpoint) {
		t.Errorf("error %q does not name the endpoint", err)
	}
	t.Logf("Put: %v", err)
	if _, err := s.Exists(ctx, "k"); err == nil || errors.Is(err, blob.ErrPermanent) {
		t.Fatalf("Exists on an unreachable endpoint: %v, want a transient error", err)
	}
}

func TestBadURLs(t *testing.T) {
	for _, c := range []struct {
		url  string
		opts blob.Options
	}{
		{"s3:///prefix", blob.Options{}},
		{"s3://user:pass@bucket/p", blob.Options{}},
		{"s3://bucket/a/../b", blob.Options{}},
		{"s3://bucket/p?region=x", blob.Options{}},
		{"s3://bucket/p", blob.Options{Endpoint: "127.0.0.1:9000"}},
	} {
		if s, err := blob.Open(t.Context(), c.url, c.opts); err == nil {
			s.Close()
			t.Errorf("Open(%q, %+v) succeeded", c.url, c.opts)
		} else if strings.Contains(err.Error(), "pass") && strings.Contains(c.url, "pass") {
			t.Errorf("error leaks the URL password: %v", err)
		}
	}
}
