package verneuil_test

import (
	"bytes"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// openHeapWAL opens name in the test's directory through the VFS with
// exclusive locking and switches it to WAL mode: its wal-index is in heap
// memory.
func (e *env) openHeapWAL(t *testing.T, name string) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(e.dir, name)
	db := e.open(path, "_locking_mode=EXCLUSIVE")
	db.SetMaxOpenConns(1)
	journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
	return path, db
}

// shell runs SQL through Debian's sqlite3 shell, which bypasses the VFS.
func shell(t *testing.T, path, sql string) {
	t.Helper()
	sh, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatalf("the sqlite3 shell is needed: %v", err)
	}
	if out, err := exec.Command(sh, path, sql).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", sql, err, out)
	}
}

// TestWALHeap_BypassBetweenSessions: a writer that bypasses the VFS (the
// sqlite3 shell) commits in WAL mode after a heap-memory session whose
// last transaction committed no frame, changing a page other than page 1
// (so the database header, its change counter included, and the version
// xattr stay the same) and checkpointing on close. The process's tracker
// of the file is forgotten between the sessions, or kept by an idle
// connection. The commits that follow
// through the VFS, with a heap-memory wal-index again (first an empty
// transaction) or with a -shm, must not be laid over the state before the
// bypassing commit: the replica is the reference after each.
func TestWALHeap_BypassBetweenSessions(t *testing.T) {
	for _, tc := range []struct {
		name, params string
		then         []string
		keep         bool
	}{
		{"heap, empty transaction first", "_locking_mode=EXCLUSIVE", []string{"BEGIN IMMEDIATE", "COMMIT"}, false},
		{"heap", "_locking_mode=EXCLUSIVE", nil, false},
		{"normal locking", "", nil, false},
		{"normal locking, empty transaction first", "", []string{"BEGIN IMMEDIATE", "COMMIT"}, false},
		{"tracker kept, heap, empty transaction first", "_locking_mode=EXCLUSIVE", []string{"BEGIN IMMEDIATE", "COMMIT"}, true},
		{"tracker kept, heap", "_locking_mode=EXCLUSIVE", nil, true},
		{"tracker kept, normal locking", "", nil, true},
		{"tracker kept, normal locking, empty transaction first", "", []string{"BEGIN IMMEDIATE", "COMMIT"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "bypass.db")
			if tc.keep {
				// An idle connection (no lock, no read) keeps the
				// process's tracker of the file between sessions.
				idle := e.open(path, "")
				c, err := idle.Conn(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
			}
			db := e.open(path, "_locking_mode=EXCLUSIVE")
			db.SetMaxOpenConns(1)
			journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
			mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
			for i := range 300 {
				mustExec(t, db, "INSERT INTO t VALUES(?, randomblob(900))", i)
			}
			e.checkWALReplica(t, path)
			db.Close()

			// A session whose only transaction commits no frame: the
			// tracker captures the file as it is.
			db = e.open(path, "_locking_mode=EXCLUSIVE")
			db.SetMaxOpenConns(1)
			mustExec(t, db, "BEGIN IMMEDIATE")
			mustExec(t, db, "COMMIT")
			e.checkWALReplica(t, path)
			db.Close()

			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Row 150 is in the third chunk; the next insert does not
			// touch that chunk.
			shell(t, path, "UPDATE t SET v=zeroblob(900) WHERE id=150;")
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before[:100], after[:100]) || bytes.Equal(before, after) {
				t.Fatal("the bypassing commit should change the file but not its header")
			}
			heapMode(t, path, true) // no -shm, no -wal left

			db = e.open(path, tc.params)
			db.SetMaxOpenConns(1)
			for _, q := range tc.then {
				mustExec(t, db, q)
			}
			mustExec(t, db, "INSERT INTO t VALUES(1000, randomblob(900))")
			e.checkWALReplica(t, path)
		})
	}
}
