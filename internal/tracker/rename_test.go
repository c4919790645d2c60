package tracker

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRegression_DBAfterRename: a database renamed (or unlinked) while its
// connections keep it open is still found by the path it was opened under,
// as before databases were keyed by device and inode (SQLite's pager4
// tests do this; the per-commit check looks the database up by path).
func TestRegression_DBAfterRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.db")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m := New(Options{SpoolDir: filepath.Join(dir, "spool"), Hostname: "h"})
	h := m.Open(p)
	defer m.Release(h)
	want := m.DB(p)
	if want == nil {
		t.Fatal("the open database is not found by its path")
	}
	if err := os.Rename(p, p+"-moved"); err != nil {
		t.Fatal(err)
	}
	if got := m.DB(p); got != want {
		t.Fatalf("after a rename: DB(path) = %p, want %p", got, want)
	}
	if err := os.WriteFile(p, []byte("another file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := m.DB(p); got != want {
		t.Fatalf("after another file took the name: DB(path) = %p, want %p", got, want)
	}
}
