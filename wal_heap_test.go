package verneuil_test

import (
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// heapMode asserts that the WAL database at path has no -shm: its
// connection keeps the wal-index in heap memory.
func heapMode(t *testing.T, path string, want bool) {
	t.Helper()
	_, err := os.Stat(path + "-shm")
	if got := errors.Is(err, fs.ErrNotExist); got != want {
		t.Fatalf("wal-index in heap memory: %v, want %v (stat -shm: %v)", got, want, err)
	}
}

func journalMode(t *testing.T, db *sql.DB, q, want string) {
	t.Helper()
	var mode string
	if err := db.QueryRow(q).Scan(&mode); err != nil || mode != want {
		t.Fatalf("%s: %q %v, want %q", q, mode, err, want)
	}
}

// TestWALHeap_RandomWorkload: a randomised workload in WAL mode with the
// wal-index in heap memory (locking_mode=EXCLUSIVE before the WAL opens),
// with checkpoints of every kind (PASSIVE, FULL, RESTART, TRUNCATE,
// auto-checkpoints, none for a long stretch), switches to rollback mode,
// to normal locking (a wal-index in -shm) and back, and a reopen; after
// every few commits the restored latest version is byte-for-byte the
// checkpointed reference. Within one connection's session the commits are
// captured from the frames, not rescanned.
func TestWALHeap_RandomWorkload(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("seed"+strconv.FormatUint(seed, 10), func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "heap.db")
			db := e.open(path, "_locking_mode=EXCLUSIVE")
			db.SetMaxOpenConns(1)
			w := newWorkload(t, db, seed)
			for range 5 {
				w.step()
			}
			e.checkReplica(path)
			journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
			w.step()
			heapMode(t, path, true)
			e.checkWALReplica(t, path)
			_, rescans := tracker.WALCounts()
			checkpoints := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
			for phase := range 3 {
				mustExec(t, db, "PRAGMA wal_autocheckpoint="+[]string{"20", "0", "1000"}[phase])
				if phase == 2 {
					// Ignored by SQLite with a heap-memory wal-index.
					mustExec(t, db, "PRAGMA locking_mode=NORMAL")
				}
				for i := range 30 {
					w.step()
					if phase != 1 && w.rng.IntN(5) == 0 {
						mustExec(t, db, "PRAGMA wal_checkpoint("+checkpoints[w.rng.IntN(len(checkpoints))]+")")
					}
					if i%10 == 9 {
						e.checkWALReplica(t, path)
					}
				}
			}
			heapMode(t, path, true)
			if _, n := tracker.WALCounts(); n != rescans {
				t.Errorf("%d rescans within one heap-memory session", n-rescans)
			}

			// Rollback mode, normal locking with a -shm, exclusive locking
			// over that -shm, and a heap-memory wal-index again.
			journalMode(t, db, "PRAGMA journal_mode=DELETE", "delete")
			w.step()
			e.checkReplica(path)
			mustExec(t, db, "PRAGMA locking_mode=NORMAL")
			w.step()
			journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
			for range 5 {
				w.step()
			}
			heapMode(t, path, false)
			e.checkWALReplica(t, path)
			mustExec(t, db, "PRAGMA locking_mode=EXCLUSIVE")
			for range 5 {
				w.step()
			}
			e.checkWALReplica(t, path)
			journalMode(t, db, "PRAGMA journal_mode=DELETE", "delete")
			w.step()
			journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
			for i := range 10 {
				w.step()
				if i == 5 {
					mustExec(t, db, "PRAGMA wal_checkpoint(RESTART)")
				}
			}
			heapMode(t, path, true)
			e.checkWALReplica(t, path)

			// A new connection on the database already in WAL mode, with
			// exclusive locking from the start.
			db.Close()
			db = e.open(path, "_locking_mode=EXCLUSIVE")
			db.SetMaxOpenConns(1)
			w.db = db
			for range 10 {
				w.step()
			}
			heapMode(t, path, true)
			e.checkWALReplica(t, path)
			w.integrityOK()
		})
	}
}

// TestWALHeap_EmptyTransactions: transactions that commit no frame, after
// a TRUNCATE checkpoint emptied the WAL and in the middle of a generation,
// change nothing and break nothing.
func TestWALHeap_EmptyTransactions(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "empty.db")
	db := e.open(path, "_locking_mode=EXCLUSIVE")
	db.SetMaxOpenConns(1)
	journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
	mustExec(t, db, "CREATE TABLE t(a)")
	mustExec(t, db, "INSERT INTO t VALUES(randomblob(3000))")
	for _, q := range []string{"BEGIN IMMEDIATE", "COMMIT", "PRAGMA wal_checkpoint(TRUNCATE)",
		"BEGIN IMMEDIATE", "COMMIT", "BEGIN EXCLUSIVE", "COMMIT"} {
		mustExec(t, db, q)
	}
	e.checkWALReplica(t, path)
	mustExec(t, db, "INSERT INTO t VALUES(randomblob(3000))")
	mustExec(t, db, "BEGIN IMMEDIATE")
	mustExec(t, db, "COMMIT")
	mustExec(t, db, "INSERT INTO t VALUES(randomblob(70000))")
	e.checkWALReplica(t, path)
}

// TestWALHeap_WALChangedUnderTheConnection: an operator deletes the -wal,
// or puts another database's valid -wal in its place, while a connection
// with a heap-memory wal-index writes to it (SQLite keeps writing to the
// file it opened). The commits from then on cannot be read: flushes report
// it and the replica stays at the last state captured, never a wrong one;
// once the connection closed and a new one commits, the replica is the
// file again.
func TestWALHeap_WALChangedUnderTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, wal string)
	}{
		{"removed", func(t *testing.T, wal string) {
			if err := os.Remove(wal); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by another valid WAL", func(t *testing.T, wal string) {
			other := filepath.Join(t.TempDir(), "other.db")
			plain, err := sql.Open("sqlite3", "file:"+other+"?vfs=unix&_journal_mode=WAL")
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			plain.SetMaxOpenConns(1)
			mustExec(t, plain, "PRAGMA wal_autocheckpoint=0")
			mustExec(t, plain, "CREATE TABLE t(a)")
			mustExec(t, plain, "INSERT INTO t VALUES(randomblob(9000))")
			b, err := os.ReadFile(other + "-wal")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(wal+".new", b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(wal+".new", wal); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "changed.db")
			db := e.open(path, "_locking_mode=EXCLUSIVE")
			db.SetMaxOpenConns(1)
			journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
			mustExec(t, db, "CREATE TABLE t(a)")
			mustExec(t, db, "INSERT INTO t VALUES(randomblob(5000))")
			e.checkWALReplica(t, path)
			before := filepath.Join(t.TempDir(), "before.db")
			if err := os.Link(walReference(t, path), before); err != nil {
				t.Fatal(err)
			}
			tc.change(t, path+"-wal")
			mustExec(t, db, "INSERT INTO t VALUES(randomblob(5000))")
			if err := e.r.Flush(t.Context()); err == nil {
				t.Fatal("flush succeeded after a commit to a -wal that is no longer at its path")
			}
			testutil.RestoreCompare(t, e.r.Targets()[0], e.key(path), before)
			db.Close()
			os.Remove(path + "-wal") // the foreign one, if any: SQLite deleted its own
			db = e.open(path, "_locking_mode=EXCLUSIVE")
			mustExec(t, db, "INSERT INTO t VALUES(3)")
			e.checkWALReplica(t, path)
		})
	}
}

// TestWALHeap_FailedExclusiveLockReleased: a connection in exclusive
// locking mode that cannot take EXCLUSIVE to open or close its WAL
// (another connection holds SHARED) gives unix's answers, and a third
// connection can read afterwards. (walnoshm-2.2.3 of SQLite 3.40's suite:
// its unix leaves PENDING after a failed EXCLUSIVE from SHARED, which
// SQLite drops with an unlock to SHARED that the VFS must pass on; the
// SQLite linked here takes no PENDING from SHARED.)
func TestWALHeap_FailedExclusiveLockReleased(t *testing.T) {
	e := newEnv(t)
	answers := map[string][]string{}
	for _, vfs := range []string{"unix", "verneuil"} {
		path := filepath.Join(e.dir, vfs+".db")
		open := func(params string) *sql.Conn {
			db, err := sql.Open("sqlite3", "file:"+path+"?vfs="+vfs+"&_busy_timeout=0"+params)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			c, err := db.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		a := open("&_journal_mode=WAL")
		for _, q := range []string{"CREATE TABLE t(a)", "INSERT INTO t VALUES(1)"} {
			if _, err := a.ExecContext(t.Context(), q); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := a.QueryContext(t.Context(), "SELECT a FROM t") // holds SHARED while stepping
		if err != nil || !rows.Next() {
			t.Fatalf("SELECT: %v", err)
		}
		b := open("")
		var got []string
		for _, q := range []string{"PRAGMA locking_mode=EXCLUSIVE", "PRAGMA journal_mode=DELETE"} {
			got = append(got, answer(t.Context(), b, q))
		}
		rows.Close()
		c := open("")
		got = append(got, answer(t.Context(), c, "SELECT a FROM t"))
		answers[vfs] = got
	}
	if !slices.Equal(answers["unix"], answers["verneuil"]) {
		t.Fatalf("verneuil answered %q, unix %q", answers["verneuil"], answers["unix"])
	}
	t.Logf("both answered %q", answers["unix"])
}
