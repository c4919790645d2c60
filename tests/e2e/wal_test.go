//go:build cgo

package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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
