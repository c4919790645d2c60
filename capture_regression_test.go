package verneuil_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestRegression_HardLinkOneReplica: two names (hard links) of one file
// opened in one process share one tracker, so flushing through the second
// name uploads the state written through the first, not a stale replica.
func TestRegression_HardLinkOneReplica(t *testing.T) {
	e := newEnv(t)
	first := filepath.Join(e.dir, "first.db")
	second := filepath.Join(e.dir, "second.db")
	a := e.open(first, "_journal_mode=DELETE")
	mustExec(t, a, "CREATE TABLE t(a)")
	mustExec(t, a, "INSERT INTO t VALUES(1)")
	if err := os.Link(first, second); err != nil {
		t.Fatal(err)
	}
	b := e.open(second, "_journal_mode=DELETE")
	b.SetMaxOpenConns(1)
	var n int
	if err := b.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("read through the second name: %d, %v", n, err)
	}
	for range 50 {
		mustExec(t, a, "INSERT INTO t VALUES(randomblob(4000))")
	}
	var res, key string
	if err := b.QueryRow("PRAGMA verneuil_flush").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("PRAGMA verneuil_flush through the second name: %q, %v", res, err)
	}
	if err := b.QueryRow("PRAGMA verneuil_manifest_name").Scan(&key); err != nil {
		t.Fatal(err)
	}
	// The replica flushed through the second name is that file, not stale.
	testutil.RestoreCompare(t, e.r.Targets()[0], key, second)
}

// TestRegression_FlushRechecksIdentity: a change made through another name
// of the file (a hard link) without this process's tracker seeing it, after
// the tracker's one identity check, makes PRAGMA verneuil_flush fail instead
// of reporting ok over a stale replica.
func TestRegression_FlushRechecksIdentity(t *testing.T) {
	e := newEnv(t)
	first := filepath.Join(e.dir, "first.db")
	second := filepath.Join(e.dir, "second.db")
	plain, err := sql.Open("sqlite3", "file:"+first+"?_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	mustExec(t, plain, "CREATE TABLE t(a)")
	if err := os.Link(first, second); err != nil {
		t.Fatal(err)
	}
	b := e.open(second, "_journal_mode=DELETE")
	b.SetMaxOpenConns(1)
	mustExec(t, b, "INSERT INTO t VALUES(1)")
	var res string
	if err := b.QueryRow("PRAGMA verneuil_flush").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("PRAGMA verneuil_flush after a captured write: %q, %v", res, err)
	}
	// Another writer, through the first name and without the VFS.
	for range 50 {
		mustExec(t, plain, "INSERT INTO t VALUES(randomblob(4000))")
	}
	err = b.QueryRow("PRAGMA verneuil_flush").Scan(&res)
	if err == nil || !strings.Contains(err.Error(), "changed outside capture") || !strings.Contains(err.Error(), second) {
		t.Fatalf("PRAGMA verneuil_flush over a stale replica: %q, %v", res, err)
	}
	// The next write through verneuil rescans: flush is ok again and the
	// replica is the file.
	mustExec(t, b, "INSERT INTO t VALUES(2)")
	if err := b.QueryRow("PRAGMA verneuil_flush").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("PRAGMA verneuil_flush after the next write: %q, %v", res, err)
	}
	e.checkReplica(second)
}

// TestRegression_SlicedRescanThroughVFS: the first read through verneuil of
// a 12 MiB database written behind its back copies it through the VFS's
// private file in 1 MiB slices, one SHARED hold each, after the capture;
// PRAGMA verneuil_flush waits for the copy and the replica is the file.
func TestRegression_SlicedRescanThroughVFS(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "sliced.db")
	writeBig(t, path, 12)
	before := sqlite3vfs.ReadStats().SliceHolds
	b := e.open(path, "_journal_mode=DELETE")
	defer b.Close()
	var n int
	if err := b.QueryRow("SELECT count(*) FROM big").Scan(&n); err != nil || n != 12 {
		t.Fatalf("first read through verneuil: %d rows, %v", n, err)
	}
	var res string
	if err := b.QueryRow("PRAGMA verneuil_flush").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("PRAGMA verneuil_flush after the first read: %q, %v", res, err)
	}
	if holds := sqlite3vfs.ReadStats().SliceHolds - before; holds < 12 {
		t.Fatalf("the first capture of a 12 MiB file took %d slice holds; want one per MiB", holds)
	}
	e.checkReplica(path)
	mustExec(t, b, "INSERT INTO big VALUES(randomblob(5000))") // squashes into the rescan
	e.checkReplica(path)
}

// TestSlicedRescan_ConcurrentBypassingWriter: a writer that bypasses the
// VFS commits without pause while the first read's sliced copy runs.
// Whatever the interleaving, a flush either fails (the copy was abandoned)
// or publishes a consistent database, never a torn mix; the next write
// through verneuil rescans and the replica is the file.
func TestSlicedRescan_ConcurrentBypassingWriter(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "sliced.db")
	plain := writeBig(t, path, 12)
	stop, done := make(chan struct{}), make(chan error)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := plain.Exec("INSERT INTO t VALUES(randomblob(3000))"); err != nil {
				done <- err
				return
			}
		}
	}()
	b := e.open(path, "_journal_mode=DELETE&_busy_timeout=10000")
	defer b.Close()
	b.SetMaxOpenConns(1)
	var n int
	if err := b.QueryRow("SELECT count(*) FROM big").Scan(&n); err != nil || n != 12 {
		t.Fatalf("first read through verneuil: %d rows, %v", n, err)
	}
	var res string
	ferr := b.QueryRow("PRAGMA verneuil_flush").Scan(&res)
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("bypassing writer: %v", err)
	}
	t.Logf("flush during concurrent bypassing commits: %q, %v", res, ferr)
	if ferr == nil {
		out := filepath.Join(e.dir, "published.db")
		if err := restore.ToFile(context.Background(), e.r.Targets()[0], e.latest(path), out); err != nil {
			t.Fatalf("restore: %v", err)
		}
		r, err := sql.Open("sqlite3", "file:"+out+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var ic string
		err = r.QueryRow("PRAGMA integrity_check").Scan(&ic)
		r.Close()
		if err != nil || ic != "ok" {
			t.Fatalf("the published replica is not a consistent database: %q, %v", ic, err)
		}
	}
	mustExec(t, b, "INSERT INTO t VALUES(1)")
	if err := b.QueryRow("PRAGMA verneuil_flush").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("PRAGMA verneuil_flush after a write through verneuil: %q, %v", res, err)
	}
	e.checkReplica(path)
}

// writeBig creates the database path through unix (behind verneuil's
// back) with mb blobs of 1 MiB in table big and an empty table t, and
// returns the open connection.
func writeBig(t *testing.T, path string, mb int) *sql.DB {
	t.Helper()
	plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=DELETE&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	plain.SetMaxOpenConns(1)
	mustExec(t, plain, "CREATE TABLE big(v BLOB)")
	mustExec(t, plain, "CREATE TABLE t(v)")
	mustExec(t, plain, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?) INSERT INTO big(v) SELECT randomblob(1048576) FROM s", mb)
	return plain
}
