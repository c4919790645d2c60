package verneuil_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

// TestRegression_HandleSurvivesRestart: a connection opened before
// Replicator.Close and a new Start keeps its old handle in the VFS. Its
// commits must not be captured into the replica of a database that the new
// Replicator tracks, and closing it must not release that database.
func TestRegression_HandleSurvivesRestart(t *testing.T) {
	e1 := newEnv(t)
	oldPath := filepath.Join(e1.dir, "old.db")
	oldDB := e1.open(oldPath, "_journal_mode=DELETE")
	oldDB.SetMaxOpenConns(1)
	mustExec(t, oldDB, "CREATE TABLE t(a)")
	mustExec(t, oldDB, "INSERT INTO t VALUES(randomblob(300000))")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e1.r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	e2 := newEnv(t)
	newPath := filepath.Join(e2.dir, "new.db")
	newDB := e2.open(newPath, "_journal_mode=DELETE")
	newDB.SetMaxOpenConns(1)
	mustExec(t, newDB, "CREATE TABLE u(b)")
	mustExec(t, newDB, "INSERT INTO u VALUES('new')")
	e2.checkReplica(newPath)

	// The surviving connection writes: pass-through, nothing replicated.
	mustExec(t, oldDB, "INSERT INTO t VALUES(randomblob(200000))")
	e2.checkReplica(newPath)
	if err := oldDB.Close(); err != nil {
		t.Fatal(err)
	}
	// new.db is still tracked: its next commit is captured.
	mustExec(t, newDB, "INSERT INTO u VALUES('after')")
	e2.checkReplica(newPath)
}

// TestRegression_JournalOfUntrackedConnection: a nolock connection (not
// tracked) opens the journal of a database that a tracked connection of the
// same process has open without a write lock. The journal must not be
// paired with the other connection's main file, which may close first
// (under -asan this was a heap-use-after-free in journalFinalized).
func TestRegression_JournalOfUntrackedConnection(t *testing.T) {
	for _, mode := range []string{"DELETE", "TRUNCATE", "PERSIST"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "j.db")
			b := e.open(path, "_journal_mode="+mode)
			b.SetMaxOpenConns(1)
			mustExec(t, b, "CREATE TABLE t(a)")
			// The tracked connection's own journal is paired.
			before := sqlite3vfs.ReadStats()
			mustExec(t, b, "INSERT INTO t VALUES(1)")
			if sqlite3vfs.ReadStats().JournalsPaired == before.JournalsPaired {
				t.Fatal("the journal of the tracked connection was not paired with its main file")
			}
			a := e.open(path, "nolock=1&_journal_mode="+mode)
			a.SetMaxOpenConns(1)
			before = sqlite3vfs.ReadStats()
			ctx := context.Background()
			conn, err := a.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, q := range []string{"BEGIN", "INSERT INTO t VALUES(randomblob(100000))", "CLOSE B", "COMMIT"} {
				if q == "CLOSE B" {
					if err := b.Close(); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if _, err := conn.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if got := sqlite3vfs.ReadStats().JournalsPaired - before.JournalsPaired; got != 0 {
				t.Fatalf("%d journal(s) of the nolock connection paired with a tracked main file", got)
			}
		})
	}
}
