package main

import (
	"os"
	"path/filepath"
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
