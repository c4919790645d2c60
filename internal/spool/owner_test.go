package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegression_SymlinkedSpoolRoot: a spool root that is a symbolic link
// (which another user could have planted to read or feed the spool) is
// refused by Open, which creates spools, and by List, which the copier scans.
func TestRegression_SymlinkedSpoolRoot(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "spool")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(real, "k", Info{Path: "/a.db", Name: "h:/a.db"}); err != nil {
		t.Fatal(err)
	}
	if d, err := Open(link, "k", Info{Path: "/a.db", Name: "h:/a.db"}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Open through a symlinked root = %v, %v; want an error", d, err)
	}
	if keys, err := List(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("List of a symlinked root = %q, %v; want an error", keys, err)
	}
	// A fresh root is created private.
	root := filepath.Join(t.TempDir(), "new")
	if _, err := Open(root, "k", Info{}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(root); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("new spool root: %v, %v; want mode 0700", st.Mode(), err)
	}
}
