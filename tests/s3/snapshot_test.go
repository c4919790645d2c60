//go:build cgo

package s3

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/config"
)

func openSnapshot(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:verneuil://s3host"+path+"?vfs=verneuil_snapshot")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func count(db *sql.DB) (n int, err error) {
	// hex(v) reads every byte of the blobs (length(v) would not).
	err = db.QueryRow("SELECT count(*) FROM t WHERE hex(v) <> ''").Scan(&n)
	return n, err
}

// Read replicas on a real S3 server: the replica follows the source, an
// unchanged refresh check is one request, and a store that stops answering
// fails reads (and opens) with an error after snapshot_timeout, then
// recovers.
func TestSnapshotS3(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	proxy := startProxy(t, endpoint)
	dir := t.TempDir()
	cfg := s3Config(dir, proxy.URL(), bucket, "snap")
	cfg.LogLevel = "error"
	cfg.CacheDir = filepath.Join(dir, "cache")
	cfg.SnapshotRefreshInterval = 1 // check at every read transaction
	cfg.SnapshotTimeout = config.Duration(time.Second)
	r := startReplicator(t, cfg)
	ctx := context.Background()
	path := filepath.Join(dir, "src.db")
	src := openDB(t, path)
	exec1(t, src, "CREATE TABLE t(v BLOB)")
	for range 30 {
		exec1(t, src, "INSERT INTO t VALUES(randomblob(20000))")
	}
	if err := r.FlushDB(ctx, path); err != nil {
		t.Fatal(err)
	}
	snap := openSnapshot(t, path)
	if n, err := count(snap); err != nil || n != 30 {
		t.Fatalf("replica: %d rows, %v", n, err)
	}
	// Unchanged: one conditional request per read transaction here (the
	// interval is 1 ns), no GET.
	before, _ := proxy.counts()
	if n, err := count(snap); err != nil || n != 30 {
		t.Fatalf("replica: %d rows, %v", n, err)
	}
	if after, _ := proxy.counts(); after-before != 1 {
		t.Errorf("an unchanged read made %d requests, want 1 (the conditional check)", after-before)
	}
	exec1(t, src, "INSERT INTO t VALUES(randomblob(20000))")
	if err := r.FlushDB(ctx, path); err != nil {
		t.Fatal(err)
	}
	if n, err := count(snap); err != nil || n != 31 {
		t.Fatalf("replica after a commit: %d rows, %v", n, err)
	}

	// The store stops answering (every request held for a minute).
	other := filepath.Join(dir, "other.db")
	odb := openDB(t, other)
	exec1(t, odb, "CREATE TABLE t(v BLOB)")
	exec1(t, odb, "INSERT INTO t VALUES(randomblob(300000))")
	if err := r.FlushDB(ctx, other); err != nil {
		t.Fatal(err)
	}
	stale := openSnapshot(t, other)
	if err := stale.Ping(); err != nil { // opened: manifest loaded
		t.Fatal(err)
	}
	proxy.set("slow", 1, time.Minute)
	_, err := count(stale)
	var se sqlite3.Error
	if !errors.As(err, &se) || se.Code != sqlite3.ErrIoErr {
		t.Errorf("read of uncached chunks from a hung store: %v, want SQLITE_IOERR", err)
	}
	fresh := openSnapshot(t, filepath.Join(dir, "never-opened.db"))
	if err := fresh.Ping(); !errors.As(err, &se) || se.Code != sqlite3.ErrCantOpen {
		t.Errorf("open with a hung store: %v, want SQLITE_CANTOPEN", err)
	}
	// The cached replica still answers (its refresh check fails, its
	// chunks are in memory), and the refresh pragma reports the failure.
	if n, err := count(snap); err != nil || n != 31 {
		t.Errorf("cached replica with a hung store: %d rows, %v", n, err)
	}
	var v string
	if err := snap.QueryRow("PRAGMA verneuil_snapshot_refresh").Scan(&v); err == nil || !strings.Contains(err.Error(), "refresh") {
		t.Errorf("refresh pragma with a hung store: %q, %v; want the refresh error", v, err)
	}
	proxy.set("", 0, 0)
	if n, err := count(stale); err != nil || n != 1 {
		t.Errorf("after the store came back: %d rows, %v", n, err)
	}
}
