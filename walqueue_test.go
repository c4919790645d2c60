package verneuil_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

// queuedSince returns how many WAL commits the VFS queued (no Go call)
// since s0.
func queuedSince(s0 sqlite3vfs.Stats) int64 { return sqlite3vfs.ReadStats().WALQueued - s0.WALQueued }

// TestQueuedWAL_SingleRowCommits: single-row commits in WAL mode, the
// database growing page by page across chunks, are nearly all queued by the
// VFS (a Go call only when a commit reaches a chunk the tracker holds no
// copy of, or restarts the WAL), and the replica is byte for byte the
// checkpointed database, at a flush in the middle and at the end.
func TestQueuedWAL_SingleRowCommits(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "q.db")
	db := e.open(path, "_journal_mode=WAL&_sync=NORMAL")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
	s0 := sqlite3vfs.ReadStats()
	const n = 3000
	for i := range n {
		mustExec(t, db, "INSERT INTO t(a, b) VALUES(?, 'row of some length')", i)
		if i == n/2 {
			e.checkWALReplica(t, path)
		}
	}
	if q := queuedSince(s0); q < n*8/10 {
		t.Fatalf("%d of %d commits queued, want most", q, n)
	}
	e.checkWALReplica(t, path)
}

// TestQueuedWAL_ConnectionsTakeTurns: two connections of one process commit
// in turn; each commit continues the other's position, so the queue goes
// on across connections, and the replica follows both.
func TestQueuedWAL_ConnectionsTakeTurns(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "turns.db")
	a := e.open(path, "_journal_mode=WAL&_sync=NORMAL")
	a.SetMaxOpenConns(1)
	mustExec(t, a, "CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, v INTEGER)")
	b := e.open(path, "_journal_mode=WAL&_sync=NORMAL")
	b.SetMaxOpenConns(1)
	mustExec(t, b, "SELECT count(*) FROM t") // b opens the WAL too
	s0 := sqlite3vfs.ReadStats()
	for i := range 400 {
		c, who := a, "a"
		if i%2 == 1 {
			c, who = b, "b"
		}
		mustExec(t, c, "INSERT INTO t(who, v) VALUES(?, ?)", who, i)
		if i%7 == 0 {
			mustExec(t, c, "UPDATE t SET v = v + 1 WHERE id % 5 = ?", i%5)
		}
	}
	if q := queuedSince(s0); q < 200 {
		t.Fatalf("%d commits queued, want most of the 400+", q)
	}
	e.checkWALReplica(t, path)
}

// TestQueuedWAL_LastConnectionClosed: commits still queued when the last
// connection closes (no flush before) are in the replica: the close builds
// them.
func TestQueuedWAL_LastConnectionClosed(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "closed.db")
	db := e.open(path, "_journal_mode=WAL&_sync=NORMAL")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	s0 := sqlite3vfs.ReadStats()
	for i := range 50 {
		mustExec(t, db, "INSERT INTO t(v) VALUES(?)", i)
	}
	if q := queuedSince(s0); q == 0 {
		t.Fatal("no commit was queued")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	// The file is checkpointed and the WAL gone: the database itself is
	// the reference.
	ro, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var count int
	if err := ro.QueryRow("SELECT count(*) FROM t").Scan(&count); err != nil || count != 50 {
		t.Fatalf("source rows %d, %v", count, err)
	}
	ro.Close()
	e.checkWALReplica(t, path)
}
