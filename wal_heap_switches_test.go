package verneuil_test

import (
	"os"
	"path/filepath"
	"testing"
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
