package verneuil_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// TestWALHeap_ShrinksAndPageSizes: within one exclusive session with a
// heap-memory wal-index, incremental auto-vacuum and VACUUM shrink the
// database, and a switch to rollback mode changes the page size before
// WAL mode comes back; the database is opened by a symbolic link to it.
// The replica is the checkpointed reference after each step.
func TestWALHeap_ShrinksAndPageSizes(t *testing.T) {
	e := newEnv(t)
	real := filepath.Join(e.dir, "real.db")
	path := filepath.Join(e.dir, "link.db")
	if err := os.Symlink(real, path); err != nil {
		t.Fatal(err)
	}
	db := e.open(path, "_locking_mode=EXCLUSIVE")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "PRAGMA auto_vacuum=INCREMENTAL")
	journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	for i := range 300 {
		mustExec(t, db, "INSERT INTO t VALUES(?, randomblob(900))", i)
	}
	heapMode(t, real, true)
	e.checkWALReplica(t, real)
	steps := []string{
		"DELETE FROM t WHERE id%3=0",
		"PRAGMA incremental_vacuum(20)",
		"PRAGMA wal_checkpoint(PASSIVE)",
		"PRAGMA incremental_vacuum",
		"DELETE FROM t WHERE id>100",
		"VACUUM",
		"INSERT INTO t SELECT id+1000, v FROM t",
		"PRAGMA wal_checkpoint(TRUNCATE)",
		"DELETE FROM t WHERE id>1000",
		"PRAGMA incremental_vacuum",
	}
	for _, q := range steps {
		mustExec(t, db, q)
		e.checkWALReplica(t, real)
	}
	journalMode(t, db, "PRAGMA journal_mode=DELETE", "delete")
	mustExec(t, db, "PRAGMA page_size=8192")
	mustExec(t, db, "VACUUM")
	e.checkReplica(real)
	journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
	for _, q := range steps {
		mustExec(t, db, q)
		e.checkWALReplica(t, real)
	}
	var ps int
	if err := db.QueryRow("PRAGMA page_size").Scan(&ps); err != nil || ps != 8192 {
		t.Fatalf("page_size %d %v", ps, err)
	}
	heapMode(t, real, true)
	w := &workload{t: t, db: db}
	w.integrityOK()
}

// TestWALHeap_JournalSizeLimit: with journal_size_limit, SQLite truncates
// the -wal after a restart or a checkpoint, leaving older frames cut at
// any length after the new generation's; with wal_autocheckpoint=0 the WAL
// first grows long. The replica is the checkpointed reference after each
// step, and the session's commits are never rescanned.
func TestWALHeap_JournalSizeLimit(t *testing.T) {
	for _, limit := range []string{"0", "10000", "100000"} {
		t.Run(limit, func(t *testing.T) {
			e := newEnv(t)
			path, db := e.openHeapWAL(t, "limit.db")
			mustExec(t, db, "PRAGMA journal_size_limit="+limit)
			mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
			mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
			for i := range 400 {
				mustExec(t, db, "INSERT INTO t VALUES(?, randomblob(700))", i)
			}
			e.checkWALReplica(t, path)
			_, rescans := tracker.WALCounts()
			for round, q := range []string{"PRAGMA wal_checkpoint(PASSIVE)", "PRAGMA wal_checkpoint(RESTART)",
				"PRAGMA wal_checkpoint(FULL)", "PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA wal_autocheckpoint=5"} {
				mustExec(t, db, q)
				for i := range 12 {
					mustExec(t, db, "UPDATE t SET v=randomblob(600) WHERE id=?", (round*37+i*29)%400)
				}
				e.checkWALReplica(t, path)
			}
			if _, n := tracker.WALCounts(); n != rescans {
				t.Errorf("%d rescans within one heap-memory session", n-rescans)
			}
		})
	}
}
