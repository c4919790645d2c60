package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegression_HardLinkOtherNameShownAtOnce: two processes write one
// file through two names (hard links), each with its own spool and
// replica. A commit through one name leaves the other's replica behind;
// status must say so at once, naming the other name (no capture in flight
// can explain it: the other name's spool holds the file's state), instead
// of "up to date" for the grace period and then an unexplained change.
func TestRegression_HardLinkOtherNameShownAtOnce(t *testing.T) {
	s := newTestSpool(t)
	a := filepath.Join(s.dir, "a.db")
	b := filepath.Join(s.dir, "b.db")
	s.writeThroughVFS(t, a, "_journal_mode=DELETE", "CREATE TABLE t(x)", "INSERT INTO t VALUES(1)")
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	s.writeThroughVFS(t, b, "_journal_mode=DELETE", "INSERT INTO t VALUES(2)")
	s.writeThroughVFS(t, a, "_journal_mode=DELETE", "INSERT INTO t VALUES(3)")
	if r := s.status(t, a); r.ChangedOutsideCapture {
		t.Errorf("status of the name written last: %+v", r)
	}
	r := s.status(t, b)
	if !r.ChangedOutsideCapture || !strings.Contains(r.Reason, a) {
		t.Fatalf("status of the other name: %+v, want changed outside capture through %s", r, a)
	}
	if _, errOut, code := s.ctl(t, "sync", b); code != 0 {
		t.Fatalf("sync: %s", errOut)
	}
	if r := s.status(t, b); r.ChangedOutsideCapture {
		t.Fatalf("status after sync: %+v", r)
	}
}
