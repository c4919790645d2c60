package tracker

import (
	"context"
	"path/filepath"
	"testing"
)

// TestRegression_HandlesUniqueAcrossManagers: handles are unique in the
// process, so a connection opened under an earlier Manager (before a
// Close and a new Start) can neither capture into nor release a database
// of the next one.
func TestRegression_HandlesUniqueAcrossManagers(t *testing.T) {
	dir := t.TempDir()
	m1 := New(Options{SpoolDir: filepath.Join(dir, "spool1"), Hostname: "h"})
	m1.Start()
	old := m1.Open(filepath.Join(dir, "old.db"))
	if old == 0 {
		t.Fatal("open old.db: handle 0")
	}
	if err := m1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m2 := New(Options{SpoolDir: filepath.Join(dir, "spool2"), Hostname: "h"})
	m2.Start()
	defer m2.Close(context.Background())
	newPath := filepath.Join(dir, "new.db")
	h := m2.Open(newPath)
	if h == 0 {
		t.Fatal("open new.db: handle 0")
	}
	if h == old {
		t.Fatalf("the new Manager reused handle %d of the old one", h)
	}
	// The old connection's events are refused, not applied to new.db.
	f := &memFile{data: make([]byte, 4096)}
	if m2.Capture(old, f, Event{Kind: Check}) {
		t.Fatal("capture of a stale handle asked for a check")
	}
	if _, err := m2.Pragma(old, f, "verneuil_manifest_name", ""); err == nil {
		t.Fatal("pragma through a stale handle succeeded")
	}
	m2.Release(old)
	if m2.DB(newPath) == nil {
		t.Fatal("releasing a stale handle released new.db")
	}
	m2.Release(h)
	if m2.DB(newPath) != nil {
		t.Fatal("new.db still tracked after its last release")
	}
}
