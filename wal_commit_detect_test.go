package verneuil_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

// TestWALCommitDetection: the shim
// counts a WAL commit at the release of the WAL write lock exactly when a
// transaction committed frames: not for rollbacks, reads or checkpoints,
// once for a multi-statement transaction, and after a TRUNCATE checkpoint
// (counted as a reset) the restart-then-commit is a commit again.
func TestWALCommitDetection(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	path := filepath.Join(e.dir, "wal.db")
	plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, plain, "CREATE TABLE t(a)")
	plain.Close()

	db := e.open(path, "")
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exec := func(qs ...string) {
		t.Helper()
		for _, q := range qs {
			if _, err := c.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	var last sqlite3vfs.Stats
	expect := func(what string, commits, resets int64) sqlite3vfs.Stats {
		t.Helper()
		s := sqlite3vfs.ReadStats()
		if d := s.WALCommits - last.WALCommits; d != commits {
			t.Errorf("%s: %d WAL commits detected, want %d", what, d, commits)
		}
		if d := s.WALResets - last.WALResets; d != resets {
			t.Errorf("%s: %d WAL resets detected, want %d", what, d, resets)
		}
		last = s
		return s
	}
	exec("SELECT count(*) FROM t")
	last = sqlite3vfs.ReadStats()
	prev := int64(0) // the counters are process-wide: only deltas and this database's frames count
	for i := 0; i < 5; i++ {
		exec("INSERT INTO t VALUES(randomblob(100))")
		s := expect("autocommit insert", 1, 0)
		if s.WALLastMxFrame <= prev {
			t.Errorf("insert %d: last mxFrame %d, not after %d", i, s.WALLastMxFrame, prev)
		}
		prev = s.WALLastMxFrame
	}
	exec("SELECT count(*) FROM t")
	expect("read", 0, 0)
	exec("BEGIN", "INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(2)", "ROLLBACK")
	expect("rollback", 0, 0)
	exec("BEGIN", "INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(randomblob(9000))", "DELETE FROM t WHERE a=1", "COMMIT")
	expect("one transaction of three statements", 1, 0)
	exec("PRAGMA wal_checkpoint(PASSIVE)")
	expect("passive checkpoint", 0, 0)
	exec("PRAGMA wal_checkpoint(TRUNCATE)")
	expect("truncate checkpoint", 0, 1)
	exec("INSERT INTO t VALUES(3)")
	s := expect("insert after the truncate (restart, then commit)", 1, 0)
	if s.WALLastMxFrame >= prev {
		t.Errorf("after the restart the last mxFrame is %d, want fewer than %d", s.WALLastMxFrame, prev)
	}
	// A writer through unix is not seen by the shim (it is a bypassing
	// writer: the design detects it at the next write lock).
	plain, err = sql.Open("sqlite3", "file:"+path+"?vfs=unix")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	mustExec(t, plain, "INSERT INTO t VALUES(4)")
	expect("a commit through unix", 0, 0)
	exec("INSERT INTO t VALUES(5)")
	expect("the next commit through verneuil", 1, 0)
}
