package verneuil_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// openReplicated opens the database name in e's directory through the
// replicating VFS (journal_mode=MEMORY: SQLite refuses a rollback journal
// to a database file no longer at its path, SQLITE_READONLY_DBMOVED),
// creates table t with rows rows of size bytes, and checks the replica. It
// returns the path, the replica key and the connection.
func openReplicated(t *testing.T, e *env, name string, rows, size int) (string, string, *sql.DB) {
	t.Helper()
	p := filepath.Join(e.dir, name)
	db := e.open(p, "_journal_mode=MEMORY")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	mustExec(t, db, "INSERT INTO t(v) SELECT randomblob(?) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?) SELECT i FROM s)", size, rows)
	e.checkReplica(p)
	return p, e.key(p), db
}

// reclaimNow runs spool.Reclaim on key as a copier daemon's scan does,
// with no idle time, and reports whether the spool was removed.
func reclaimNow(t *testing.T, e *env, key string) bool {
	t.Helper()
	done, err := spool.Reclaim(e.cfg.SpoolDir, key, 0, func(*spool.Dir) bool { return true })
	if err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	return done
}

// TestReclaimWhileDeletedDatabaseKeepsCommitting: a database removed (or
// renamed) while a connection still has it open, and keeps committing: a
// daemon's scan reclaims its spool between commits, again and again; every
// later commit is still replicated byte-identically under the old path's
// replica name, even when a reclaim races the commits. Once the connection is closed, the spool is reclaimed: the
// rescan its revival asked for can no longer happen (the file is gone), so
// it must not keep the spool forever.
func TestReclaimWhileDeletedDatabaseKeepsCommitting(t *testing.T) {
	for _, how := range []string{"remove", "rename"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			p, key, db := openReplicated(t, e, "gone.db", 100, 3000)
			// The file stays reachable at kept, not at p.
			kept := filepath.Join(e.dir, "kept.db")
			if how == "remove" {
				if err := os.Link(p, kept); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Rename(p, kept); err != nil {
				t.Fatal(err)
			}
			for round := range 3 {
				if !reclaimNow(t, e, key) {
					t.Fatalf("round %d: spool of the deleted, uploaded database not reclaimed", round)
				}
				mustExec(t, db, "INSERT INTO t(v) VALUES(randomblob(5000))")
				mustExec(t, db, "UPDATE t SET v = randomblob(100) WHERE id = ?", 1+round*7)
				// Right after the commits, before the copier (or the
				// tracker's build) is done: a reclaim then finds a version
				// not uploaded and keeps the spool, or (with no idle time)
				// none built yet and removes it; the build then recreates
				// it. Either way the flush ends with the file's state.
				reclaimNow(t, e, key)
				if err := e.r.Flush(context.Background()); err != nil {
					t.Fatalf("round %d: flush: %v", round, err)
				}
				testutil.RestoreCompare(t, e.r.Targets()[0], key, kept)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if !reclaimNow(t, e, key) {
				t.Fatal("spool of the deleted database, closed after its spool was revived, never reclaimed")
			}
		})
	}
}

// TestDatabaseRecreatedAtSamePath: a database deleted and created again at
// its path, without a reclaim in between (the spool still holds the old
// file's uploaded state), and then with the old file's connection still
// open and committing: each commit's replica is the file that committed,
// byte for byte, never a mix of the two.
func TestDatabaseRecreatedAtSamePath(t *testing.T) {
	e := newEnv(t)
	p, key, old := openReplicated(t, e, "again.db", 200, 4000)
	oldKept := filepath.Join(e.dir, "old.db")
	if err := os.Link(p, oldKept); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	// A new, smaller database at the same path.
	fresh, err := sql.Open("sqlite3", "file:"+p+"?vfs=verneuil")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	fresh.SetMaxOpenConns(1)
	mustExec(t, fresh, "CREATE TABLE small(x)")
	mustExec(t, fresh, "INSERT INTO small VALUES(1)")
	e.checkReplica(p)
	// Both files commit in turn under one replica name.
	for round := range 3 {
		mustExec(t, old, "INSERT INTO t(v) VALUES(randomblob(3000))")
		if err := e.r.Flush(context.Background()); err != nil {
			t.Fatalf("round %d: flush: %v", round, err)
		}
		testutil.RestoreCompare(t, e.r.Targets()[0], key, oldKept)
		mustExec(t, fresh, "INSERT INTO small VALUES(?)", round)
		e.checkReplica(p)
	}
}
