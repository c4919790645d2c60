package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// TestRegression_WALCaptureWaitsForABusySpool: one capture of a WAL
// database by sync (and verify, and the copier daemon) waits for the
// spool's flock that another process's build holds, instead of deferring
// after 20 ms as a capture in SQLite's write path must. Before, on a
// loaded machine, a live writer's process held the flock for most of each
// attempt's 20 ms and verify failed "capture deferred" after all its
// attempts (TestWALSyncVerifyLiveWriters, 1 run in 4 under load).
func TestRegression_WALCaptureWaitsForABusySpool(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "busy.db")
	s.writeThroughVFS(t, path, "_journal_mode=WAL", "CREATE TABLE t(a, b)", "INSERT INTO t VALUES(0, randomblob(100))")
	plain := openPlainWAL(t, path)
	mustExecDB(t, plain, "INSERT INTO t VALUES(1, randomblob(3000))") // a state the spool lacks
	d, err := spool.Existing(s.spoolDir, walReplicaKey(path))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	unlock, err := d.Lock() // another process's build (a flock of another open file)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- syncWAL(ctx, r, path) }()
	// Held for 10 times the write path's wait, a 25th of this one's.
	time.Sleep(200 * time.Millisecond)
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("one capture while another process's build held the spool for 200 ms: %v", err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.compareWithReference(t, path)
}
