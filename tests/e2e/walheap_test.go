//go:build cgo

package e2e

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// TestCrashLoopWALHeap is TestCrashLoopWAL with writers that open the
// database, already in WAL mode, with locking_mode=EXCLUSIVE: their
// wal-index is in heap memory (no -shm), and a killed writer leaves a -wal
// the next one recovers from the file alone.
func TestCrashLoopWALHeap(t *testing.T) {
	s := newSetup(t)
	db := filepath.Join(s.dir, "crash-wal-heap.db")
	createWAL(t, db)
	crashLoopWAL(t, s, db, "_locking_mode=EXCLUSIVE", func(i int) {
		if _, err := os.Stat(db + "-shm"); err == nil {
			t.Fatalf("iteration %d: %s-shm exists: the killed writer did not keep its wal-index in heap memory", i, db)
		}
	})
}

// TestCrashStagesWALHeap is TestCrashStagesWAL with writers whose
// wal-index is in heap memory.
func TestCrashStagesWALHeap(t *testing.T) {
	crashStagesWAL(t, "_locking_mode=EXCLUSIVE", createWAL)
}

// createWAL creates the writers' table in db, in WAL mode, through unix.
func createWAL(t *testing.T, db string) {
	t.Helper()
	plain, err := sql.Open("sqlite3", "file:"+db+"?vfs=unix&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)"); err != nil {
		t.Fatal(err)
	}
}
