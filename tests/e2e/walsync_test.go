//go:build cgo

package e2e

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestWALSyncVerifyLiveWriters: verneuilctl sync and verify on a WAL
// database while a writer process commits through the VFS without pause
// (and uploads its own versions) and this process, bypassing the VFS,
// commits rows of its own and runs every kind of checkpoint. Every sync
// and verify succeeds (verify composes the source at the replica's
// latest WAL position, whichever process uploaded it); once the writers
// stop, a sync alone (no commit through the VFS) makes the replica the
// checkpointed reference byte for byte.
func TestWALSyncVerifyLiveWriters(t *testing.T) {
	s := newSetup(t)
	path := filepath.Join(s.dir, "sync-wal.db")
	wal := "VERNEUIL_E2E_PARAMS=_journal_mode=WAL"
	if err := s.writer("count", path, "VERNEUIL_E2E_N=1", wal).Run(); err != nil {
		t.Fatal(err)
	}
	loop := s.writer("loop", path, wal)
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		loop.Process.Kill()
		loop.Wait()
	}()
	bypass, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_busy_timeout=20000")
	if err != nil {
		t.Fatal(err)
	}
	defer bypass.Close()
	bypass.SetMaxOpenConns(1)
	var stop atomic.Bool
	bypassDone := make(chan error, 1)
	go func() {
		kinds := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
		for i := 0; !stop.Load(); i++ {
			q := "PRAGMA wal_checkpoint(" + kinds[i%len(kinds)] + ")"
			if i%3 == 0 {
				q = "INSERT INTO t(k, v) VALUES(-2, randomblob(3000))"
			}
			if _, err := bypass.Exec(q); err != nil {
				bypassDone <- fmt.Errorf("%s: %w", q, err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		bypassDone <- nil
	}()
	for i := range 6 {
		cmd := []string{"sync", path}
		if i%2 == 1 {
			cmd = []string{"verify", path}
		}
		start := time.Now()
		out, errOut, code := s.ctl(cmd...)
		t.Logf("%s: %v", cmd[0], time.Since(start).Round(time.Millisecond))
		if code != 0 {
			stop.Store(true)
			t.Fatalf("%s %d with live writers: exit %d: %s%s", cmd[0], i, code, out, errOut)
		}
		if cmd[0] == "verify" && !strings.Contains(out, "identical") {
			t.Fatalf("verify: %s", out)
		}
	}
	loop.Process.Kill()
	loop.Wait()
	stop.Store(true)
	if err := <-bypassDone; err != nil {
		t.Fatalf("bypassing connection: %v", err)
	}
	// One more bypassing commit, seen by no VFS capture: sync alone
	// publishes it.
	if _, err := bypass.Exec("INSERT INTO t(k, v) VALUES(-3, randomblob(5000))"); err != nil {
		t.Fatal(err)
	}
	s.mustCtl("sync", path)
	out := filepath.Join(s.dir, "restored.db")
	s.mustCtl("restore", path, "--out", out)
	testutil.SameFile(t, out, testutil.WALReference(t, path))
	testutil.IntegrityCheck(t, out)
	if n := countRows(t, out, "k = -3"); n != 1 {
		t.Fatalf("the last bypassing commit is not in the replica (%d rows)", n)
	}
	if o := s.mustCtl("verify", path); !strings.Contains(o, "identical") {
		t.Fatalf("verify after the writers stopped: %s", o)
	}
}
