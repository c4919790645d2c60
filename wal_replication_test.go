package verneuil_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// walReference builds the reference for a replica of the WAL database at
// path (testutil.WALReference).
func walReference(t *testing.T, path string) string {
	t.Helper()
	return testutil.WALReference(t, path)
}

// checkWALReplica flushes and compares the restored latest version with
// the reference of the WAL database at path.
func (e *env) checkWALReplica(t *testing.T, path string) {
	t.Helper()
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	testutil.RestoreCompare(t, e.r.Targets()[0], e.key(path), walReference(t, path))
}

// TestWALReplication_RandomWorkload: a randomised workload in WAL mode,
// with checkpoints of every kind (PASSIVE, FULL, RESTART, TRUNCATE,
// auto-checkpoint, none for a long stretch) and switches to rollback mode
// and back; after every few commits the restored latest version is
// byte-for-byte the checkpointed reference.
func TestWALReplication_RandomWorkload(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "wal.db")
			db := e.open(path, "")
			db.SetMaxOpenConns(1)
			w := newWorkload(t, db, seed)
			for range 10 {
				w.step()
			}
			var mode string
			if err := db.QueryRow("PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
				t.Fatalf("journal_mode=WAL: %q %v", mode, err)
			}
			e.checkWALReplica(t, path)
			checkpoints := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
			for phase := range 4 {
				switch phase {
				case 0:
					mustExec(t, db, "PRAGMA wal_autocheckpoint=20") // frequent auto-checkpoints and restarts
				case 1:
					mustExec(t, db, "PRAGMA wal_autocheckpoint=0") // none for a long stretch
				case 2:
					mustExec(t, db, "PRAGMA wal_autocheckpoint=1000")
				case 3:
					// Rollback mode and back.
					if err := db.QueryRow("PRAGMA journal_mode=DELETE").Scan(&mode); err != nil || mode != "delete" {
						t.Fatalf("journal_mode=DELETE: %q %v", mode, err)
					}
					for range 5 {
						w.step()
					}
					e.checkReplica(path)
					if err := db.QueryRow("PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
						t.Fatalf("journal_mode=WAL again: %q %v", mode, err)
					}
				}
				for i := range 40 {
					w.step()
					if phase != 1 && w.rng.IntN(6) == 0 {
						mustExec(t, db, "PRAGMA wal_checkpoint("+checkpoints[w.rng.IntN(len(checkpoints))]+")")
					}
					if i%10 == 9 {
						e.checkWALReplica(t, path)
					}
				}
			}
			w.integrityOK()
		})
	}
}

// TestWALReplication_ExistingWALDatabase: a database already in WAL mode
// (converted and written through unix) is replicated once it is written
// through verneuil, and flushes succeed.
func TestWALReplication_ExistingWALDatabase(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "already-wal.db")
	plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	plain.SetMaxOpenConns(1)
	mustExec(t, plain, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, plain, "CREATE TABLE t(a)")
	mustExec(t, plain, "INSERT INTO t VALUES(randomblob(5000))")
	db := e.open(path, "")
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("read WAL database through verneuil: %d, %v", n, err)
	}
	mustExec(t, db, "INSERT INTO t VALUES(randomblob(70000))")
	e.checkWALReplica(t, path)
	var res string
	if err := db.QueryRow("PRAGMA verneuil_flush").Scan(&res); err != nil {
		t.Fatalf("PRAGMA verneuil_flush on a WAL database: %q, %v", res, err)
	}
	plain.Close()
}

// TestWALReplication_ExclusiveLocking: locking_mode=EXCLUSIVE set on a
// connection already in WAL mode (SQLite then takes no wal-index locks)
// keeps replicating, captured at COMMIT_PHASETWO; a database opened in WAL
// mode with exclusive locking from the start (a wal-index in heap memory)
// is replicated too (wal_heap_test.go tests that mode further).
func TestWALReplication_ExclusiveLocking(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "excl.db")
	db := e.open(path, "_journal_mode=WAL")
	db.SetMaxOpenConns(1)
	w := newWorkload(t, db, 11)
	for range 5 {
		w.step()
	}
	mustExec(t, db, "PRAGMA locking_mode=EXCLUSIVE")
	for i := range 30 {
		w.step()
		if i%10 == 9 {
			e.checkWALReplica(t, path)
		}
	}
	db.Close()

	heap := filepath.Join(e.dir, "heap.db")
	plain, err := sql.Open("sqlite3", "file:"+heap+"?vfs=unix&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, plain, "CREATE TABLE t(a)")
	plain.Close()
	hdb := e.open(heap, "_locking_mode=EXCLUSIVE")
	hdb.SetMaxOpenConns(1)
	mustExec(t, hdb, "INSERT INTO t VALUES(randomblob(1000))")
	mustExec(t, hdb, "INSERT INTO t VALUES(randomblob(1000))")
	e.checkWALReplica(t, heap)
}
