package verneuil_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestRegression_CommitRescanDoesNotStall: the first commit through
// verneuil on a large database written behind its back (no usable spool:
// its identity is unknown) must not copy the whole file while it holds
// SHARED. Two writers through verneuil commit every 50 ms with a busy
// timeout of 200 ms (synchronous=OFF, so that a shared machine's fsync
// latency does not count); whichever commits first triggers the rescan,
// and the other, and the commits that land during the copy, must never get
// SQLITE_BUSY (before: "database is locked" while the first commit copied
// the file). The replica after the flush is the file.
func TestRegression_CommitRescanDoesNotStall(t *testing.T) {
	mb, commits := 256, 60
	if testing.Short() {
		mb, commits = 128, 30
	}
	e := newEnv(t)
	path := filepath.Join(e.dir, "stall.db")
	writeBig(t, path, mb).Close()
	before := sqlite3vfs.ReadStats().SliceHolds
	errs := make(chan error, 2*commits)
	var wg sync.WaitGroup
	for w := range 2 {
		db := e.open(path, "_journal_mode=DELETE&_sync=OFF&_busy_timeout=200")
		db.SetMaxOpenConns(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range commits {
				if _, err := db.Exec("INSERT INTO t VALUES(randomblob(200))"); err != nil {
					errs <- fmt.Errorf("writer %d, commit %d: %w", w, i, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if holds := sqlite3vfs.ReadStats().SliceHolds - before; holds < int64(mb) {
		t.Errorf("the commit-triggered rescan of a %d MiB file took %d slice holds; want one per MiB", mb, holds)
	}
	e.checkReplica(path)
}

// TestCommitRescan_BypassingWriterDuringCopy: a writer that bypasses the
// VFS commits while the sliced copy started by a commit runs. The copy
// notices (its stamp check), restarts or gives up, and never publishes a
// torn mix: a flush meanwhile either fails or publishes a consistent
// database; after the bypassing writer stops, the next write through
// verneuil and a flush leave the replica equal to the file.
func TestCommitRescan_BypassingWriterDuringCopy(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "bypass.db")
	plain := writeBig(t, path, 24)
	v := e.open(path, "_journal_mode=DELETE&_busy_timeout=10000")
	v.SetMaxOpenConns(1)
	mustExec(t, v, "INSERT INTO t VALUES(1)") // starts the sliced copy
	stop, done := make(chan struct{}), make(chan error)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, err := plain.Exec("INSERT INTO t VALUES(randomblob(3000))"); err != nil {
				done <- err
				return
			}
		}
	}()
	mustExec(t, v, "INSERT INTO t VALUES(2)")
	var res string
	ferr := v.QueryRow("PRAGMA verneuil_flush").Scan(&res)
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("bypassing writer: %v", err)
	}
	t.Logf("flush during bypassing commits: %q, %v", res, ferr)
	if ferr == nil {
		assertConsistentReplica(t, e, path)
	}
	mustExec(t, v, "INSERT INTO t VALUES(3)")
	if err := v.QueryRow("PRAGMA verneuil_flush").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("PRAGMA verneuil_flush after a write through verneuil: %q, %v", res, err)
	}
	e.checkReplica(path)
}

// assertConsistentReplica restores the latest version of path and fails
// the test unless it passes SQLite's integrity check.
func assertConsistentReplica(t *testing.T, e *env, path string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "published.db")
	if err := restore.ToFile(context.Background(), e.r.Targets()[0], e.latest(path), out); err != nil {
		t.Fatalf("restore: %v", err)
	}
	testutil.IntegrityCheck(t, out)
}

// TestCommitRescan_ExclusiveLockingMode: a connection in
// locking_mode=EXCLUSIVE keeps its lock after its commits, so no other
// connection, nor a sliced copy, can read the file until it lets go: the
// rescan of its first commit copies the file in the capture, and the
// replica is the file.
func TestCommitRescan_ExclusiveLockingMode(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "exclusive.db")
	writeBig(t, path, 4).Close()
	v := e.open(path, "_journal_mode=DELETE&_locking_mode=EXCLUSIVE")
	v.SetMaxOpenConns(1)
	mustExec(t, v, "INSERT INTO t VALUES(1)")
	var res string
	if err := v.QueryRow("PRAGMA verneuil_flush").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("PRAGMA verneuil_flush in exclusive locking mode: %q, %v", res, err)
	}
	e.checkReplica(path)
}
