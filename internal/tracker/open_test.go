package tracker

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// TestOpenDoesNotStallOtherDatabases: while one database's spool is being
// opened (here held in the CheckSpool hook, as a slow file system would
// hold it), connections to other databases open, capture and close.
func TestOpenDoesNotStallOtherDatabases(t *testing.T) {
	dir := t.TempDir()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	m := New(Options{SpoolDir: filepath.Join(dir, "spool"), Hostname: "h",
		CheckSpool: func(d *spool.Dir) error {
			if i, err := d.Info(); err == nil && strings.HasSuffix(i.Path, "slow.db") {
				once.Do(func() { close(entered) })
				<-release
			}
			return nil
		}})
	m.Start()
	defer m.Close(context.Background())
	slow := make(chan uint64)
	go func() { slow <- m.Open(filepath.Join(dir, "slow.db")) }()
	<-entered
	done := make(chan error)
	go func() {
		for i := range 5 {
			h := m.Open(filepath.Join(dir, fmt.Sprintf("fast%d.db", i)))
			if h == 0 {
				done <- fmt.Errorf("open fast%d.db: handle 0", i)
				return
			}
			m.Capture(h, &memFile{data: make([]byte, 4096)}, Event{Kind: Check})
			m.Release(h)
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		close(release)
		t.Fatal("other databases waited for one database's spool to be opened")
	}
	close(release)
	if h := <-slow; h == 0 {
		t.Fatal("open slow.db: handle 0")
	}
}

// TestConcurrentOpensShareOneTracker: connections opened at once to one
// new database, while its spool is being created, all get the one tracker.
func TestConcurrentOpensShareOneTracker(t *testing.T) {
	dir := t.TempDir()
	m := New(Options{SpoolDir: filepath.Join(dir, "spool"), Hostname: "h"})
	m.Start()
	defer m.Close(context.Background())
	p := filepath.Join(dir, "same.db")
	const n = 16
	handles := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { handles[i] = m.Open(p) })
	}
	wg.Wait()
	db := m.DB(p)
	if db == nil {
		t.Fatal("same.db not tracked")
	}
	m.mu.Lock()
	for i, h := range handles {
		if m.handles[h] != db {
			t.Errorf("connection %d has another tracker than the registered one", i)
		}
	}
	refs := db.refs
	m.mu.Unlock()
	if refs != n {
		t.Fatalf("tracker has %d references, want %d", refs, n)
	}
	for _, h := range handles {
		m.Release(h)
	}
	if m.DB(p) != nil {
		t.Fatal("same.db still tracked after every connection closed")
	}
}
