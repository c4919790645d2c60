package copier

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// dbBytes returns n random bytes whose SQLite file change counter (header
// offset 24) is counter.
func dbBytes(n int, seed uint64, counter uint32) []byte {
	b := randomBytes(n, seed)
	binary.BigEndian.PutUint32(b[24:28], counter)
	return b
}

func latestManifest(t *testing.T, s *memStore, key string) *manifest.Manifest {
	t.Helper()
	b, ok := s.get(names.LatestKey(key))
	if !ok {
		t.Fatal("no latest")
	}
	m, err := manifest.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A database moved (same replica name) to a host whose clock is behind
// publishes versions numbered below the stored latest: they must still
// become latest, renumbered after it, with the skew counted.
func TestRegression_ClockBehindStillAdvancesLatest(t *testing.T) {
	s := newMemStore()
	old, rootOld := newTestCopier(t, s)
	moved, rootNew := newTestCopier(t, s)
	ctx := context.Background()

	stage(t, rootOld, "db", 1000, dbBytes(200, 1, 5))
	if err := old.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	// The new host's clock is behind: its first version is numbered 500.
	m1 := stage(t, rootNew, "db", 500, dbBytes(200, 2, 6))
	if err := moved.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	got := latestManifest(t, s, "db")
	if got.Seq != 1001 || !bytes.Equal(got.VersionID, m1.VersionID) {
		t.Fatalf("latest = version %d (%q), want the moved database's version renumbered 1001", got.Seq, got.VersionID)
	}
	if _, ok := s.get(names.ManifestKey("db", 1001)); !ok {
		t.Error("manifests/1001 missing")
	}
	if _, ok := s.get(names.ManifestKey("db", 500)); ok {
		t.Error("manifests/500 left behind, numbered before versions it follows")
	}
	// The next version, still numbered from the slow clock, follows.
	m2 := stage(t, rootNew, "db", 501, dbBytes(200, 3, 7))
	if err := moved.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	got = latestManifest(t, s, "db")
	if got.Seq != 1002 || !bytes.Equal(got.VersionID, m2.VersionID) {
		t.Fatalf("latest = version %d (%q), want %q renumbered 1002", got.Seq, got.VersionID, m2.VersionID)
	}
	if n := moved.Stats().Resequenced; n != 2 {
		t.Errorf("Resequenced = %d, want 2", n)
	}
	// Uploaded, the spool is clean: nothing more to do.
	d, err := spool.Existing(rootNew, "db")
	if err != nil {
		t.Fatal(err)
	}
	puts := s.count("put")
	if err := moved.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if s.count("put") != puts {
		t.Error("a clean spool was uploaded again")
	}
	if up, _, err := d.Uploaded(); err != nil || up == nil || up.Seq != 1002 {
		t.Errorf("upload record = %v, %v; want version 1002", up, err)
	}
	// A version the store's latest descends from (its change counter is
	// behind) is older: it does not replace latest, and is counted.
	stage(t, rootOld, "db", 1001, dbBytes(200, 4, 6))
	if err := old.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if got := latestManifest(t, s, "db"); got.Seq != 1002 {
		t.Errorf("latest = %d after an older state was uploaded, want 1002", got.Seq)
	}
	if n := old.Stats().Superseded; n != 1 {
		t.Errorf("Superseded = %d, want 1", n)
	}
}
