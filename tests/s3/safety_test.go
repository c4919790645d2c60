//go:build cgo

package s3

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// TestRegression_S3ConditionalWriteProbe: the copier's probe finds that
// the real S3 server enforces conditional writes, and that a proxy which
// answers lost conditional writes with success does not; replication
// stays correct through it.
func TestRegression_S3ConditionalWriteProbe(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	ctx := context.Background()

	dir := t.TempDir()
	cfg := s3Config(dir, endpoint, bucket, "probe-direct")
	r := startReplicator(t, cfg)
	path := filepath.Join(dir, "direct.db")
	db := openDB(t, path)
	exec1(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
	exec1(t, db, "INSERT INTO t(b) VALUES(randomblob(100000))")
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.Stats().NoConditionalWrites; len(got) != 0 {
		t.Fatalf("the S3 server was found to ignore conditional writes: %q", got)
	}
	db.Close()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}

	proxy := startProxy(t, endpoint)
	proxy.set("ignore-conditions", 1, 0)
	dir = t.TempDir()
	cfg = s3Config(dir, proxy.URL(), bucket, "probe-proxy")
	r = startReplicator(t, cfg)
	path = filepath.Join(dir, "proxied.db")
	db = openDB(t, path)
	exec1(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
	for range 3 {
		exec1(t, db, "INSERT INTO t(b) VALUES(randomblob(100000))")
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Stats().NoConditionalWrites; len(got) != 1 || got[0] != r.Targets()[0].String() {
		t.Fatalf("Stats().NoConditionalWrites = %q, want the proxied target", got)
	}
	direct := s3Config(dir, endpoint, bucket, "probe-proxy")
	restoreCompare(t, cfg, openStore(t, direct), path)
	keys, err := openStore(t, direct).List(ctx, "probes/")
	if err != nil || len(keys) != 0 {
		t.Fatalf("probe objects left: %q, %v", keys, err)
	}
}

// TestRegression_S3HugeContentLength: a server announcing an absurd
// Content-Length makes uploads and restores fail with a clear error; the
// process neither panics nor allocates it.
func TestRegression_S3HugeContentLength(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	proxy := startProxy(t, endpoint)
	proxy.set("huge-length", 1, 0)
	dir := t.TempDir()
	cfg := s3Config(dir, proxy.URL(), bucket, "huge")
	r := startReplicator(t, cfg)
	path := filepath.Join(dir, "huge.db")
	db := openDB(t, path)
	exec1(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
	exec1(t, db, "INSERT INTO t(b) VALUES(randomblob(100000))")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Flush(ctx); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("flush through a server announcing 4 EiB: %v, want an error wrapping blob.ErrTooLarge", err)
	}
	_, key, err := replicator.ReplicaName(cfg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Latest(ctx, openStore(t, cfg), key); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("restore through it: %v, want an error wrapping blob.ErrTooLarge", err)
	}
	// Once the server behaves, replication catches up.
	proxy.set("", 0, 0)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	restoreCompare(t, cfg, openStore(t, cfg), path)
	if slices.Contains(r.Stats().NoConditionalWrites, r.Targets()[0].String()) {
		t.Fatal("the server was reported as ignoring conditional writes")
	}
}

// TestRegression_S3SwitchFromLocalTarget: the embedded-style local target
// is replaced by S3 while spool_dir stays: the first flush to S3 makes a
// complete replica there.
func TestRegression_S3SwitchFromLocalTarget(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	cfg := s3Config(dir, endpoint, bucket, "switched")
	local := *cfg
	local.Targets = []config.Target{{URL: config.FileURL(filepath.Join(dir, "store"))}}
	if err := os.MkdirAll(filepath.Join(dir, "store"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "switch.db")

	r := startReplicator(t, &local)
	db := openDB(t, path)
	exec1(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
	for range 50 {
		exec1(t, db, "INSERT INTO t(b) VALUES(randomblob(5000))")
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}

	r = startReplicator(t, cfg)
	db = openDB(t, path)
	exec1(t, db, "INSERT INTO t(b) VALUES(randomblob(10))")
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	restoreCompare(t, cfg, openStore(t, cfg), path)
}
