package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLastErrorRoundTrip(t *testing.T) {
	d, err := Open(t.TempDir(), "k", Info{Path: "/x", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if le, err := d.ReadLastError(); le != nil || err != nil {
		t.Fatalf("no record: %v %v", le, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec := LastError{Message: strings.Repeat("x", 10000), Time: now, Since: now.Add(-time.Minute),
		Failures: 3, Permanent: true, NextAttempt: now.Add(time.Second), PID: 42}
	if err := d.WriteLastError(rec); err != nil {
		t.Fatal(err)
	}
	le, err := d.ReadLastError()
	if err != nil || le == nil {
		t.Fatalf("read: %v %v", le, err)
	}
	if len(le.Message) > maxLastError+10 || le.Failures != 3 || !le.Permanent || !le.Since.Equal(rec.Since) || le.PID != 42 {
		t.Errorf("read back %+v", le)
	}
	if err := d.ClearLastError(); err != nil {
		t.Fatal(err)
	}
	if err := d.ClearLastError(); err != nil {
		t.Fatalf("clearing twice: %v", err)
	}
	if le, _ := d.ReadLastError(); le != nil {
		t.Errorf("record survived Clear: %+v", le)
	}
	os.WriteFile(filepath.Join(d.Path, LastErrorFile), []byte("{"), 0o600)
	if _, err := d.ReadLastError(); err == nil {
		t.Error("damaged record read without error")
	}
}

func TestManifestStampAndMarkUploaded(t *testing.T) {
	d, err := Open(t.TempDir(), "k", Info{Path: "/x", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := d.ManifestStamp(); err != nil || !s.IsZero() {
		t.Fatalf("no manifest: %v %v", s, err)
	}
	m1, enc1 := manifestWith(t, 1)
	if _, err := d.Publish(m1, enc1); err != nil {
		t.Fatal(err)
	}
	s1, err := d.ManifestStamp()
	if err != nil || s1.IsZero() {
		t.Fatalf("stamp: %v %v", s1, err)
	}
	if err := d.MarkUploaded(enc1); err != nil {
		t.Fatal(err)
	}
	up, _, err := d.Uploaded()
	if err != nil || up == nil || up.Seq != 1 {
		t.Fatalf("uploaded = %v, %v", up, err)
	}
	a, _ := os.Stat(filepath.Join(d.Path, "manifest"))
	b, _ := os.Stat(filepath.Join(d.Path, "uploaded"))
	if os.SameFile(a, b) {
		t.Error("uploaded is the staged file: rewriting one would change the other")
	}
	m2, enc2 := manifestWith(t, 2)
	if _, err := d.Publish(m2, enc2); err != nil {
		t.Fatal(err)
	}
	if s2, _ := d.ManifestStamp(); s2 == s1 {
		t.Error("stamp unchanged by a publish")
	}
	if up, _, _ := d.Uploaded(); up == nil || up.Seq != 1 {
		t.Fatalf("uploaded = %+v, want version 1", up)
	}
	if m, _, _ := d.Manifest(); m.Seq != 2 {
		t.Fatalf("staged = %d, want 2", m.Seq)
	}
	if err := d.MarkUploaded(enc2); err != nil {
		t.Fatal(err)
	}
	if up, _, _ := d.Uploaded(); up == nil || up.Seq != 2 {
		t.Fatalf("uploaded = %+v, want version 2", up)
	}
	ents, _ := os.ReadDir(filepath.Join(d.Path, "tmp"))
	for _, e := range ents {
		if e.Name() != SpareFile {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
}
