//go:build cgo

package s3

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// A replica whose latest manifest is a delta (format 2) on the real S3
// server: a cold open costs 2 requests (latest, read with its ETag, and
// the base) and no LIST; a refresh to the next delta on the same base
// costs 1 (the conditional GET of latest; the base is cached).
func TestSnapshotDeltaRequestsS3(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	proxy := startProxy(t, endpoint)
	dir := t.TempDir()
	cfg := s3Config(dir, proxy.URL(), bucket, "snapdelta")
	cfg.LogLevel = "error"
	cfg.CacheDir = filepath.Join(dir, "cache")
	r := startReplicator(t, cfg)
	ctx := context.Background()
	path := filepath.Join(dir, "src.db")
	src := openDB(t, path)
	exec1(t, src, "CREATE TABLE t(v BLOB)")
	for range 60 {
		exec1(t, src, "INSERT INTO t VALUES(randomblob(20000))")
	}
	if err := r.FlushDB(ctx, path); err != nil {
		t.Fatal(err)
	}
	canon, err := names.Canonical(path)
	if err != nil {
		t.Fatal(err)
	}
	key := names.Key(names.Replica(cfg.Hostname, canon))
	store := openStore(t, cfg)
	// commit adds a row, flushes and checks that latest is now a delta.
	commit := func() {
		t.Helper()
		exec1(t, src, "INSERT INTO t VALUES(randomblob(100))")
		if err := r.FlushDB(ctx, path); err != nil {
			t.Fatal(err)
		}
		data, err := store.Get(ctx, names.LatestKey(key))
		if err != nil {
			t.Fatal(err)
		}
		if _, d, err := manifest.DecodeObject(data); err != nil || d == nil {
			t.Fatalf("latest is not a delta manifest (%v): the test needs one", err)
		}
	}
	commit()

	before, _ := proxy.counts()
	snap := openSnapshot(t, path)
	if err := snap.Ping(); err != nil {
		t.Fatal(err)
	}
	if after, _ := proxy.counts(); after-before != 2 {
		t.Errorf("cold open of a delta manifest: %d requests, want 2 (latest and its base)", after-before)
	}
	if n, err := count(snap); err != nil || n != 61 {
		t.Fatalf("replica: %d rows, %v", n, err)
	}

	commit()
	before, _ = proxy.counts()
	var v string
	if err := snap.QueryRow("PRAGMA verneuil_snapshot_refresh").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if after, _ := proxy.counts(); after-before != 1 {
		t.Errorf("refresh to a delta on the same base: %d requests, want 1", after-before)
	}
	if n, err := count(snap); err != nil || n != 62 {
		t.Fatalf("replica after the refresh: %d rows, %v", n, err)
	}
}
