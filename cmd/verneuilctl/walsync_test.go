package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// openPlainWAL opens the database at path without the VFS in WAL mode,
// with automatic checkpoints off: a writer that bypasses capture.
func openPlainWAL(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=WAL&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("PRAGMA wal_autocheckpoint=0"); err != nil {
		t.Fatal(err)
	}
	return db
}

func mustExecDB(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// walReplicaKey is the replica key of the database at path.
func walReplicaKey(path string) string { return names.Key(names.Replica("ctltest", path)) }

// compareWithReference compares the replica's latest version with the
// checkpointed copy of the WAL database at path (no commit running).
func (s *testSpool) compareWithReference(t *testing.T, path string) uint64 {
	t.Helper()
	store, err := fileblob.OpenDir(s.store, false)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.RestoreCompare(t, store, walReplicaKey(path), testutil.WALReference(t, path)).Seq
}

// TestWALSyncAndVerify: commits to a WAL database that bypass the VFS
// (frames in the -wal, after a PASSIVE checkpoint, after a TRUNCATE) are
// captured by sync, byte for byte what wal_checkpoint(TRUNCATE) leaves;
// verify finds the replica identical; a sync with nothing new publishes
// no version; status shows the database in WAL mode, not failing.
func TestWALSyncAndVerify(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "wal.db")
	s.writeThroughVFS(t, path, "_journal_mode=WAL", "CREATE TABLE t(a, b)", "INSERT INTO t VALUES(0, randomblob(100))")
	plain := openPlainWAL(t, path)
	steps := []struct {
		name  string
		stmts []string
	}{
		{"frames in the WAL", nil},
		{"after a PASSIVE checkpoint", []string{"PRAGMA wal_checkpoint(PASSIVE)"}},
		{"after a TRUNCATE checkpoint", []string{"PRAGMA wal_checkpoint(TRUNCATE)"}},
		{"after a RESTART checkpoint", []string{"PRAGMA wal_checkpoint(RESTART)"}},
	}
	row := 1
	for _, st := range steps {
		mustExecDB(t, plain, st.stmts...)
		for range 50 {
			mustExecDB(t, plain, fmt.Sprintf("INSERT INTO t VALUES(%d, randomblob(3000))", row))
			row++
		}
		mustExecDB(t, plain, "UPDATE t SET b = randomblob(200) WHERE a % 7 = 0")
		if out, errOut, code := s.ctl(t, "sync", path); code != 0 || !strings.Contains(out, "synced") {
			t.Fatalf("%s: sync: exit %d: %s%s", st.name, code, out, errOut)
		}
		seq := s.compareWithReference(t, path)
		if out, errOut, code := s.ctl(t, "verify", path); code != 0 || !strings.Contains(out, "identical") {
			t.Fatalf("%s: verify: exit %d: %s%s", st.name, code, out, errOut)
		}
		if again := s.compareWithReference(t, path); again != seq {
			t.Errorf("%s: verify of an unchanged database published version %d after %d", st.name, again, seq)
		}
	}
	if r := s.status(t, path); !r.WAL || r.ChangedOutsideCapture {
		t.Errorf("status: %+v", r)
	}
}

// TestWALSyncLiveWriter: sync and verify while a writer that bypasses the
// VFS commits without pause and another connection runs every kind of
// checkpoint: each sync succeeds and publishes a committed state (the
// rows and the counter agree, integrity_check passes), verify never
// reports a difference, and once the writer stops the replica is the
// checkpointed reference byte for byte.
func TestWALSyncLiveWriter(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "live.db")
	s.writeThroughVFS(t, path, "_journal_mode=WAL", "CREATE TABLE t(a INTEGER PRIMARY KEY, b)", "CREATE TABLE c(n)", "INSERT INTO c VALUES(0)")
	writer := openPlainWAL(t, path)
	ckpt := openPlainWAL(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var werr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 1; ctx.Err() == nil; i++ {
			tx, err := writer.Begin()
			if err == nil {
				_, err = tx.Exec("INSERT INTO t VALUES(?, randomblob(1500))", i)
			}
			if err == nil {
				_, err = tx.Exec("UPDATE c SET n = ?", i)
			}
			if err == nil {
				err = tx.Commit()
			}
			if err != nil {
				werr = err
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		kinds := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
		for i := 0; ctx.Err() == nil; i++ {
			// Busy answers are normal with a live writer.
			ckpt.Exec("PRAGMA wal_checkpoint(" + kinds[i%len(kinds)] + ")")
			time.Sleep(3 * time.Millisecond)
		}
	}()
	store, err := fileblob.OpenDir(s.store, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		cmd := "sync"
		if i%2 == 1 {
			cmd = "verify"
		}
		out, errOut, code := s.ctl(t, cmd, path)
		if code != 0 {
			cancel()
			wg.Wait()
			t.Fatalf("%s %d with a live writer: exit %d: %s%s", cmd, i, code, out, errOut)
		}
		m, err := restore.Latest(ctx, store, walReplicaKey(path))
		if err != nil {
			t.Fatal(err)
		}
		restored := filepath.Join(t.TempDir(), "r.db")
		if err := restore.ToFile(ctx, store, m, restored); err != nil {
			t.Fatal(err)
		}
		checkCommittedState(t, restored)
	}
	cancel()
	wg.Wait()
	if werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	if _, errOut, code := s.ctl(t, "sync", path); code != 0 {
		t.Fatalf("final sync: exit %d: %s", code, errOut)
	}
	s.compareWithReference(t, path)
}

// checkCommittedState checks that the restored database is a state the
// live writer committed: sound, and its counter is its row count.
func checkCommittedState(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	var rows, n, maxA int
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check of a synced version: %q %v", ok, err)
	}
	if err := db.QueryRow("SELECT count(*), coalesce(max(a), 0), (SELECT n FROM c) FROM t").Scan(&rows, &maxA, &n); err != nil {
		t.Fatal(err)
	}
	if rows != n || maxA != n {
		t.Fatalf("a synced version is no committed state: %d rows up to %d, counter %d", rows, maxA, n)
	}
}

// TestWALDaemonSyncsBypassingCommits: the copier daemon's check compares
// the WAL position of the -shm with the spool's, and syncs a database in
// WAL mode whose bypassing commits were left alone for the grace period.
func TestWALDaemonSyncsBypassingCommits(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "daemon.db")
	s.writeThroughVFS(t, path, "_journal_mode=WAL", "CREATE TABLE t(a)", "INSERT INTO t VALUES(1)")
	plain := openPlainWAL(t, path)
	mustExecDB(t, plain, "WITH RECURSIVE s(x) AS (SELECT 2 UNION ALL SELECT x+1 FROM s WHERE x < 500) INSERT INTO t SELECT x FROM s")
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	h := newHealer(cfg, slog.New(slog.DiscardHandler), time.Second)
	defer h.close(context.Background())
	key := walReplicaKey(path)
	h.pass(context.Background())
	if st := h.snapshot()[key]; !st.WAL || st.Outside || h.syncs.Load() != 0 {
		t.Fatalf("fresh bypassing commit counted as outside capture before the grace period: %+v", st)
	}
	h.clock = func() time.Time { return time.Now().Add(time.Minute) }
	h.pass(context.Background())
	if n := h.syncs.Load(); n != 1 {
		t.Fatalf("daemon syncs: %d, errors %d, want 1", n, h.syncErrors.Load())
	}
	s.compareWithReference(t, path)
	h.pass(context.Background())
	if st := h.snapshot()[key]; !st.WAL || !st.InSync || h.syncs.Load() != 1 {
		t.Errorf("after the sync: %+v, %d syncs", st, h.syncs.Load())
	}
}

// TestWALSyncThroughSymlink: sync and verify named by a symbolic link to
// a WAL database read the -wal and -shm SQLite uses (named after the
// link's target), not files named after the link.
func TestWALSyncThroughSymlink(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "real.db")
	s.writeThroughVFS(t, path, "_journal_mode=WAL", "CREATE TABLE t(a)", "INSERT INTO t VALUES(1)")
	plain := openPlainWAL(t, path)
	mustExecDB(t, plain, "INSERT INTO t VALUES(2)", "INSERT INTO t VALUES(3)")
	link := filepath.Join(s.dir, "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"sync", "verify"} {
		if out, errOut, code := s.ctl(t, cmd, link); code != 0 {
			t.Fatalf("%s through a symlink: exit %d: %s%s", cmd, code, out, errOut)
		}
	}
	s.compareWithReference(t, path)
}
