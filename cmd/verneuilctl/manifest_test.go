package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegression_ManifestOutPrivate: manifest --out writes the encoded
// manifest, which holds the database's first chunk (its schema and first
// rows): like a restored database, the file must not be readable by other
// users.
func TestRegression_ManifestOutPrivate(t *testing.T) {
	s := newTestSpool(t)
	key := s.stage(t, "/srv/app.db", 7)
	if _, errOut, code := s.ctl(t, "flush"); code != 0 {
		t.Fatalf("flush: exit %d: %s", code, errOut)
	}
	out := filepath.Join(s.dir, "pinned.manifest")
	if _, errOut, code := s.ctl(t, "manifest", "--manifest", key, "--out", out); code != 0 {
		t.Fatalf("manifest --out: exit %d: %s", code, errOut)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("manifest --out created %s with mode %v, want it private (-rw-------)", out, fi.Mode().Perm())
	}
}

// TestRegression_RestoreSaysWhatItMovedAside: restore --force renames a hot
// journal beside the destination aside (to roll it back into the old
// database, the operator renames it back). The operator must be told the
// new name: for long database names it does not even start with the
// database's name.
func TestRegression_RestoreSaysWhatItMovedAside(t *testing.T) {
	s := newTestSpool(t)
	key := s.stage(t, "/srv/app.db", 7)
	if _, errOut, code := s.ctl(t, "flush"); code != 0 {
		t.Fatalf("flush: exit %d: %s", code, errOut)
	}
	out := filepath.Join(s.dir, "app.db")
	if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	journal := append([]byte{0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7}, make([]byte, 504)...)
	if err := os.WriteFile(out+"-journal", journal, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := s.ctl(t, "restore", "--manifest", key, "--out", out, "--force")
	if code != 0 {
		t.Fatalf("restore --force: exit %d: %s", code, errOut)
	}
	moved, err := filepath.Glob(out + "-journal.verneuil-moved-*")
	if err != nil || len(moved) != 1 {
		t.Fatalf("moved aside: %v %v, want one file", moved, err)
	}
	if !strings.Contains(errOut, moved[0]) || !strings.Contains(errOut, out+"-journal") {
		t.Fatalf("restore --force moved %s to %s without saying so; stderr:\n%s", out+"-journal", moved[0], errOut)
	}
}
