package verneuil_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// A hostile or corrupt latest names, for a chunk of one length, the hash
// of a chunk of another length that the process already holds in memory
// (here: the same chunks at twice the chunk size). Reading it must fail
// with an error (the VFS's SQLITE_IOERR_CORRUPTFS), never serve the cached chunk's bytes, nor
// bytes past the end of its buffer.
func TestSnapshotCachedChunkOfOtherLength(t *testing.T) {
	e := snapEnv(t)
	ctx := context.Background()
	path := filepath.Join(e.dir, "lie.db")
	src := e.open(path, "_journal_mode=TRUNCATE")
	src.SetMaxOpenConns(1)
	mustExec(t, src, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); "+
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000) "+
		"INSERT INTO t(v) SELECT printf('%.*c', 300, 'x') FROM n")
	if err := e.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m := e.latest(path)
	if len(m.Chunks) < 6 {
		t.Fatalf("want at least 6 chunks, have %d", len(m.Chunks))
	}
	snap := openSnap(t, path, "")
	snap.SetMaxOpenConns(1)
	want := queryString(t, src, "SELECT count(*) || ':' || sum(length(v)) FROM t")
	if got := queryString(t, snap, "SELECT count(*) || ':' || sum(length(v)) FROM t"); got != want {
		t.Fatalf("replica %s, source %s", got, want)
	}

	// The lie: chunks twice as large, each named by the hash of the
	// (cached) chunk of the same index.
	st := e.r.Targets()[0]
	c1, err := restore.Chunk(ctx, st, m, 1)
	if err != nil {
		t.Fatal(err)
	}
	lie := *m
	lie.Seq++
	lie.ChunkSize = 2 * m.ChunkSize
	lie.Chunk0 = append(append([]byte(nil), m.Chunk0...), c1...)
	n := manifest.ChunkCount(lie.Length, lie.ChunkSize)
	lie.Chunks = append([]manifest.Hash{manifest.HashOf(lie.Chunk0)}, m.Chunks[1:n]...)
	lie.HeaderHash = manifest.HashOf(lie.Chunk0[:100])
	enc, err := lie.Encode()
	if err != nil {
		t.Fatal(err)
	}
	key := e.key(path)
	if err := st.Put(ctx, names.ManifestKey(key, lie.Seq), enc); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, names.LatestKey(key), enc); err != nil {
		t.Fatal(err)
	}
	queryString(t, snap, "PRAGMA verneuil_snapshot_refresh")
	var got string
	err = snap.QueryRow("SELECT count(*) || ':' || sum(length(v)) FROM t").Scan(&got)
	var se sqlite3.Error
	// SQLite reports the VFS's SQLITE_IOERR_CORRUPTFS as SQLITE_CORRUPT.
	if !errors.As(err, &se) || (se.Code != sqlite3.ErrIoErr && se.Code != sqlite3.ErrCorrupt) {
		t.Fatalf("a version whose chunks have other lengths than their hashes' content: got %q, err %v; want an error", got, err)
	}
}

// A restart with live connections: a snapshot connection opened under one
// Start stays open across Close and a new Start, and a new connection
// opens another database. Each connection reads its own database or fails;
// neither is ever served the other's pages (the handles of the sources of
// the two managers once collided, and the new connection shared the old
// one's versions).
func TestSnapshotRestartKeepsSourcesApart(t *testing.T) {
	ctx := context.Background()
	e1 := snapEnv(t)
	pathX := filepath.Join(e1.dir, "x.db")
	src := e1.open(pathX, "")
	mustExec(t, src, "CREATE TABLE tx(v TEXT); INSERT INTO tx VALUES('from x')")
	if err := e1.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	snapX := openSnap(t, pathX, "")
	snapX.SetMaxOpenConns(1)
	snapX.SetConnMaxIdleTime(0)
	if got := queryString(t, snapX, "SELECT group_concat(name) FROM sqlite_master"); got != "tx" {
		t.Fatalf("replica of x: tables %q", got)
	}
	if err := e1.r.Close(ctx); err != nil {
		t.Fatal(err)
	}

	e2 := snapEnv(t)
	pathY := filepath.Join(e2.dir, "y.db")
	srcY := e2.open(pathY, "")
	mustExec(t, srcY, "CREATE TABLE ty(v TEXT); INSERT INTO ty VALUES('from y')")
	if err := e2.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	snapY := openSnap(t, pathY, "")
	snapY.SetMaxOpenConns(1)
	if got := queryString(t, snapY, "SELECT group_concat(name) FROM sqlite_master"); got != "ty" {
		t.Fatalf("replica of y opened after a restart: tables %q, want ty", got)
	}
	queryString(t, snapY, "PRAGMA verneuil_snapshot_refresh")
	if got := queryString(t, snapY, "SELECT v FROM ty"); got != "from y" {
		t.Fatalf("replica of y: %q", got)
	}
	// The connection of the first Start: its own data, or an error.
	var got string
	if err := snapX.QueryRow("SELECT group_concat(name) FROM sqlite_master").Scan(&got); err == nil && got != "tx" {
		t.Fatalf("replica of x after a restart: tables %q, want tx or an error", got)
	}
}

// packFDs counts this process's open files under dir.
func packFDs(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list open files: %v", err)
	}
	n := 0
	for _, d := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", d.Name())); err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// Start and Close again and again in one process (a configuration reload),
// reading a replica each time through a shared cache_dir: Close releases
// the disk cache's files, so that no pack stays open, however many times.
func TestSnapshotCloseReleasesDiskCache(t *testing.T) {
	ctx := context.Background()
	cache := filepath.Join(t.TempDir(), "cache")
	for cycle := range 3 {
		e := snapEnv(t, func(c *config.Config) { c.CacheDir = cache })
		path := filepath.Join(e.dir, "reload.db")
		src := e.open(path, "")
		mustExec(t, src, "CREATE TABLE t(v BLOB); "+
			"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 40) "+
			"INSERT INTO t SELECT randomblob(20000) FROM n")
		if err := e.r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		snap := openSnap(t, path, "")
		if got := queryString(t, snap, "SELECT count(*) FROM t"); got != "40" {
			t.Fatalf("cycle %d: %s rows", cycle, got)
		}
		snap.Close()
		src.Close()
		if err := e.r.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if n := packFDs(t, cache); n != 0 {
			t.Fatalf("cycle %d: %d files of the disk cache still open after Close", cycle, n)
		}
	}
}
