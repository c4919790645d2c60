package verneuil_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// restartReplicator stops e's Replicator and starts another on the same
// configuration (spool and target): the next process. Connections through
// the old one must be closed first.
func (e *env) restartReplicator(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), closeBound)
	defer cancel()
	if err := e.r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r, err := replicator.Start(ctx, e.cfg)
	if err != nil {
		t.Fatalf("Start again: %v", err)
	}
	e.r = r
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeBound)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// TestWALReplication_FirstCommitAdopts: a process commits to a WAL
// database and exits while another process (a unix connection) keeps the
// -wal; a second process commits once. Its capture adopts the spool's
// manifest by WAL position (no rescan) unless something happened in
// between that the manifest's position cannot prove: a bypassing commit,
// a TRUNCATE checkpoint, a RESTART checkpoint and a commit, a switch to
// rollback mode and back, a spool that asks for a rescan or whose manifest
// is damaged. A checkpoint that copied every frame without a
// commit after it is adopted (the first commit restarts the WAL).
// In every case the restored latest is the checkpointed reference.
func TestWALReplication_FirstCommitAdopts(t *testing.T) {
	cases := []struct {
		name    string
		between []string // run through unix between the two processes
		adopt   bool
		spool   string // a file of the database's spool overwritten in between
	}{
		{"spool asks for a rescan", nil, false, spool.RescanFile},
		{"damaged spool manifest", nil, false, spool.ManifestFile},
		{"nothing", nil, true, ""},
		{"passive checkpoint", []string{"PRAGMA wal_checkpoint(PASSIVE)"}, true, ""},
		{"bypassing commit", []string{"INSERT INTO t0(k, v) VALUES(-1, randomblob(3000))"}, false, ""},
		{"truncate checkpoint", []string{"PRAGMA wal_checkpoint(TRUNCATE)"}, false, ""},
		// A complete backfill with no commit after it: the first commit
		// restarts the WAL in its hold, and the file is the manifest's state.
		{"restart checkpoint", []string{"PRAGMA wal_checkpoint(RESTART)"}, true, ""},
		{"rollback mode and back", []string{"PRAGMA journal_mode=DELETE", "INSERT INTO t0(k, v) VALUES(-5, randomblob(300))", "PRAGMA journal_mode=WAL"}, false, ""},
		{"restart checkpoint and commit", []string{"PRAGMA wal_checkpoint(RESTART)", "INSERT INTO t0(k, v) VALUES(-2, randomblob(70000))"}, false, ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "adopt.db")
			db := e.open(path, "_journal_mode=WAL")
			db.SetMaxOpenConns(1)
			mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
			w := newWorkload(t, db, uint64(40+i))
			for range 12 {
				w.step()
			}
			mustExec(t, db, "INSERT INTO t0(k, v) VALUES(-3, randomblob(100))")
			e.checkWALReplica(t, path)
			// Another process keeps the database open, so that closing
			// the first process's connection does not checkpoint and
			// delete the -wal.
			plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix")
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			plain.SetMaxOpenConns(1)
			var n int
			if err := plain.QueryRow("SELECT count(*) FROM t0").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			e.restartReplicator(t)
			for _, q := range c.between {
				mustExec(t, plain, q)
			}
			if c.spool != "" {
				f := filepath.Join(e.cfg.SpoolDir, spool.DBsDirName, e.key(path), c.spool)
				if err := os.WriteFile(f, []byte("not what it was"), 0o644); err != nil {
					t.Fatal(err)
				}
			}

			a0, r0 := tracker.WALCounts()
			db2 := e.open(path, "")
			db2.SetMaxOpenConns(1)
			mustExec(t, db2, "INSERT INTO t0(k, v) VALUES(-4, randomblob(5000))")
			a1, r1 := tracker.WALCounts()
			if c.adopt && (a1-a0 != 1 || r1 != r0) {
				t.Errorf("second process's first commit: adopted %d, rescanned %d; want an adoption and no rescan", a1-a0, r1-r0)
			}
			if !c.adopt && (a1 != a0 || r1-r0 != 1) {
				t.Errorf("second process's first commit: adopted %d, rescanned %d; want a rescan", a1-a0, r1-r0)
			}
			e.checkWALReplica(t, path)
			// Commits that follow continue incrementally.
			mustExec(t, db2, "UPDATE t0 SET v = randomblob(200) WHERE k = -4")
			if _, r2 := tracker.WALCounts(); r2 != r1 {
				t.Errorf("a commit after the first one rescanned")
			}
			e.checkWALReplica(t, path)
		})
	}
}

// TestWALReplication_AdoptAfterRestartWithLiveConnection: a connection
// opened through the VFS before the Replicator restarted stays open and
// commits after the restart (its old handle passes through: not captured).
// The new process's first commit must not adopt the manifest of the state
// before that commit; the replica stays the reference throughout.
func TestWALReplication_AdoptAfterRestartWithLiveConnection(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "live.db")
	old := e.open(path, "_journal_mode=WAL")
	old.SetMaxOpenConns(1)
	mustExec(t, old, "PRAGMA wal_autocheckpoint=0")
	w := newWorkload(t, old, 77)
	for range 8 {
		w.step()
	}
	mustExec(t, old, "INSERT INTO t0(k, v) VALUES(-3, randomblob(100))")
	e.checkWALReplica(t, path)
	e.restartReplicator(t)
	mustExec(t, old, "INSERT INTO t0(k, v) VALUES(-6, randomblob(9000))")

	a0, r0 := tracker.WALCounts()
	db := e.open(path, "")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "INSERT INTO t0(k, v) VALUES(-7, randomblob(500))")
	if a1, r1 := tracker.WALCounts(); a1 != a0 || r1-r0 != 1 {
		t.Errorf("first commit after an uncaptured one: adopted %d, rescanned %d; want a rescan", a1-a0, r1-r0)
	}
	e.checkWALReplica(t, path)
	// The old connection commits again, then the new one: the new one
	// continues from its remembered position over the old one's frames.
	mustExec(t, old, "UPDATE t0 SET v = randomblob(300) WHERE k = -6")
	mustExec(t, db, "UPDATE t0 SET v = randomblob(300) WHERE k = -7")
	e.checkWALReplica(t, path)
}

// TestWALReplication_AdoptWithChangedTarget: the second process replicates
// to another target than the first (an operator changed the
// configuration). The copier asks the spool for a rescan when targets
// change, so the first commit must not adopt; the new target receives a
// complete replica.
func TestWALReplication_AdoptWithChangedTarget(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "moved.db")
	db := e.open(path, "_journal_mode=WAL")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	w := newWorkload(t, db, 91)
	for range 10 {
		w.step()
	}
	mustExec(t, db, "INSERT INTO t0(k, v) VALUES(-3, randomblob(100))")
	e.checkWALReplica(t, path)
	plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var n int
	if err := plain.QueryRow("SELECT count(*) FROM t0").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other-store")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfg.Targets = []config.Target{{URL: config.FileURL(other)}}
	e.restartReplicator(t)

	a0, r0 := tracker.WALCounts()
	db2 := e.open(path, "")
	db2.SetMaxOpenConns(1)
	mustExec(t, db2, "INSERT INTO t0(k, v) VALUES(-4, randomblob(5000))")
	if a1, r1 := tracker.WALCounts(); a1 != a0 || r1-r0 != 1 {
		t.Errorf("first commit with a changed target: adopted %d, rescanned %d; want a rescan", a1-a0, r1-r0)
	}
	e.checkWALReplica(t, path)
}
