//go:build cgo

package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestWALMultiProcessWriters: several processes commit to one WAL database
// through the VFS while this process, through unix (bypassing the VFS),
// checkpoints it with every kind of checkpoint and commits rows of its own.
// A last writer through the VFS catches up; after every connection closed
// (SQLite checkpoints and deletes the -wal), the replica is the file.
func TestWALMultiProcessWriters(t *testing.T) {
	s := newSetup(t)
	path := filepath.Join(s.dir, "multi-wal.db")
	wal := "VERNEUIL_E2E_PARAMS=_journal_mode=WAL"
	first := s.writer("count", path, "VERNEUIL_E2E_N=1", wal)
	if err := first.Run(); err != nil {
		t.Fatal(err)
	}
	bypass, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_busy_timeout=20000")
	if err != nil {
		t.Fatal(err)
	}
	bypass.SetMaxOpenConns(1)
	var stop atomic.Bool
	bypassDone := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(7, 7))
		kinds := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
		for !stop.Load() {
			q := "PRAGMA wal_checkpoint(" + kinds[rng.IntN(len(kinds))] + ")"
			if rng.IntN(3) == 0 {
				q = "INSERT INTO t(k, v) VALUES(-2, randomblob(3000))"
			}
			if _, err := bypass.Exec(q); err != nil {
				bypassDone <- fmt.Errorf("%s: %w", q, err)
				return
			}
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		}
		bypassDone <- nil
	}()
	errs := make(chan error, 4)
	for i := range 4 {
		w := s.writer("count", path, "VERNEUIL_E2E_N=60", fmt.Sprint("VERNEUIL_E2E_SEED=", i), wal)
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { errs <- w.Wait() }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	stop.Store(true)
	if err := <-bypassDone; err != nil {
		t.Fatalf("bypassing connection: %v", err)
	}
	bypassRows := countRows(t, path, "k = -2")
	bypass.Close()
	// The replica may lag behind the bypassing commits until a capture
	// through the VFS: a last writer catches up.
	last := s.writer("count", path, "VERNEUIL_E2E_N=1", wal)
	if err := last.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatalf("the -wal is still there after every connection closed")
	}
	out := filepath.Join(s.dir, "restored.db")
	s.mustCtl("flush")
	s.mustCtl("restore", path, "--out", out)
	testutil.SameFile(t, out, path)
	if n := countRows(t, out, "k >= 0"); n != 242 {
		t.Fatalf("replica has %d rows written through the VFS, want 242", n)
	}
	if n := countRows(t, out, "k = -2"); n != bypassRows {
		t.Fatalf("replica has %d bypassing rows, want %d", n, bypassRows)
	}
	t.Logf("%d rows committed by the bypassing connection", bypassRows)
}

// TestCrashLoopWAL kills a writer of a WAL database with SIGKILL at random
// moments (commits in flight, frames not yet captured, checkpoints). After
// each kill what was published is a consistent committed state; then a
// writer through the VFS commits once (catching up from the WAL or
// rescanning) and, once it closed (SQLite checkpoints and deletes the
// -wal), the replica is byte-identical to the file.
func TestCrashLoopWAL(t *testing.T) {
	s := newSetup(t)
	crashLoopWAL(t, s, filepath.Join(s.dir, "crash-wal.db"), "_journal_mode=WAL", nil)
}

// crashLoopWAL runs TestCrashLoopWAL's loop on db, with writers that open
// it with the URI parameters params; afterKill, if not nil, runs after
// each kill, before anything else opens the database.
func crashLoopWAL(t *testing.T, s *setup, db, params string, afterKill func(i int)) {
	iters := 20
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_CRASH_ITERATIONS")); err == nil && v > 0 {
		iters = v
	}
	wal := "VERNEUIL_E2E_PARAMS=" + params
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for i := range iters {
		w := s.writer("loop", db, "VERNEUIL_E2E_SEED="+strconv.Itoa(i), wal)
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		w.Process.Signal(syscall.SIGKILL)
		w.Wait()
		if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if afterKill != nil {
			afterKill(i)
		}
		if i%4 == 3 {
			damageSpool(t, filepath.Join(s.dir, "spool"), rng)
			if _, errOut, code := s.ctl("flush"); code != 0 {
				t.Logf("iteration %d: flush after spool damage: %s", i, strings.TrimSpace(errOut))
			}
		} else {
			s.mustCtl("flush")
		}
		out := filepath.Join(s.dir, "published.db")
		if _, err := os.Stat(filepath.Join(s.store, "dbs")); err == nil {
			if _, errOut, code := s.ctl("restore", db, "--out", out, "--force"); code == 0 {
				testutil.IntegrityCheck(t, out)
			} else if !strings.Contains(errOut, "no replica") {
				t.Fatalf("iteration %d: restore published replica: %s", i, errOut)
			}
		}
		last := s.writer("count", db, "VERNEUIL_E2E_N=1", wal, "VERNEUIL_E2E_SEED="+strconv.Itoa(i))
		if err := last.Run(); err != nil {
			t.Fatalf("iteration %d: writer after the kill: %v", i, err)
		}
		s.mustCtl("flush")
		s.mustCtl("restore", db, "--out", out, "--force")
		testutil.SameFile(t, out, db)
	}
	testutil.IntegrityCheck(t, db)
}

// TestCrashStagesWAL kills a writer of a WAL database at every named stage
// of a commit; after each kill what was published restores and passes
// integrity_check, and after a commit through the VFS by a new process
// (which closes last: the -wal is checkpointed and deleted) the replica is
// the file.
func TestCrashStagesWAL(t *testing.T) {
	crashStagesWAL(t, "_journal_mode=WAL", nil)
}

// crashStagesWAL runs TestCrashStagesWAL with writers that open the
// database with the URI parameters params, after prepare (if not nil)
// created it.
func crashStagesWAL(t *testing.T, params string, prepare func(t *testing.T, db string)) {
	wal := "VERNEUIL_E2E_PARAMS=" + params
	for _, name := range failpoint.Names {
		t.Run(name, func(t *testing.T) {
			s := newSetup(t)
			db := filepath.Join(s.dir, "stage-wal.db")
			if prepare != nil {
				prepare(t, db)
			}
			for i, hit := range []int{1, 3, 7} {
				w := s.writer("stages", db, fmt.Sprintf("VERNEUIL_FAILPOINT=%s:%d", name, hit),
					fmt.Sprint("VERNEUIL_E2E_SEED=", i), wal)
				err := w.Run()
				var ee *exec.ExitError
				if !errorsAs(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("failpoint %s:%d was not reached (writer ended with %v)", name, hit, err)
				}
				s.mustCtl("flush")
				out := filepath.Join(s.dir, "published.db")
				if _, errOut, code := s.ctl("restore", db, "--out", out, "--force"); code == 0 {
					testutil.IntegrityCheck(t, out)
				} else if !strings.Contains(errOut, "no replica") {
					t.Fatalf("restore after kill at %s: %s", name, errOut)
				}
				last := s.writer("count", db, "VERNEUIL_E2E_N=1", wal)
				if err := last.Run(); err != nil {
					t.Fatalf("writer after the kill: %v", err)
				}
				s.mustCtl("flush")
				s.mustCtl("restore", db, "--out", out, "--force")
				testutil.SameFile(t, out, db)
			}
		})
	}
}
