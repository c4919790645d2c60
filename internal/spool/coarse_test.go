package spool

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// simulateCoarse makes publishing behave, for the test, as on a file system
// without RENAME_EXCHANGE that keeps whole-second times.
func simulateCoarse(t *testing.T) {
	t.Helper()
	simulateCoarseTimes.Store(true)
	t.Cleanup(func() { simulateCoarseTimes.Store(false) })
}

// Where the spool falls back to rename(2) and times are coarse, a freed
// inode is reused with the same size and mtime: the stamp of a version this
// process published repeats for another process's much newer one. The
// version cache must not take the newer one for its own, or a staged
// manifest goes back 30 versions.
func TestRegression_CoarseStampsSeqCacheNoRegress(t *testing.T) {
	simulateCoarse(t)
	a, err := Open(t.TempDir(), "k", Info{Path: "/x", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(a.Path, "manifest")
	m10, enc10 := manifestWith(t, 10)
	if ok, err := a.Publish(m10, enc10); err != nil || !ok {
		t.Fatalf("publish 10: %v %v", ok, err)
	}
	st10, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Another process published versions 11 to 40; the file holding 40
	// got the inode, size and mtime version 10 had.
	_, enc40 := manifestWith(t, 40)
	if len(enc40) != len(enc10) {
		t.Fatalf("test needs same-size manifests: %d and %d bytes", len(enc10), len(enc40))
	}
	if err := os.WriteFile(path, enc40, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, st10.ModTime(), st10.ModTime()); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || stampOf(st) != stampOf(st10) {
		t.Fatalf("could not repeat the stamp: %v", err)
	}
	m12, enc12 := manifestWith(t, 12)
	if ok, err := a.Publish(m12, enc12); err != nil || ok {
		t.Fatalf("publish 12 over 40: published=%v, %v", ok, err)
	}
	if got, _, err := a.Manifest(); err != nil || got.Seq != 40 {
		t.Fatalf("staged manifest = %v, %v; want version 40", got, err)
	}
}

// Stamps of versions published with coarse times are marked unreliable;
// with fine times they are reliable and strictly increase.
func TestStampReliability(t *testing.T) {
	for _, coarse := range []bool{false, true} {
		if coarse {
			simulateCoarse(t)
		}
		d, err := Open(t.TempDir(), "k", Info{Path: "/x", Name: "n"})
		if err != nil {
			t.Fatal(err)
		}
		var prev Stamp
		for seq := uint64(1); seq <= 5; seq++ {
			m, enc := manifestWith(t, seq)
			if _, err := d.Publish(m, enc); err != nil {
				t.Fatal(err)
			}
			s, err := d.ManifestStamp()
			if err != nil {
				t.Fatal(err)
			}
			if s.Reliable() == coarse {
				t.Fatalf("coarse=%v: stamp %+v reliable=%v", coarse, s, s.Reliable())
			}
			if !coarse && s.MTime <= prev.MTime {
				t.Fatalf("mtime %d not after %d", s.MTime, prev.MTime)
			}
			prev = s
		}
	}
}

// manifestCounter returns a manifest of version seq whose database header
// holds the change counter counter.
func manifestCounter(t *testing.T, seq uint64, counter uint32) (*manifest.Manifest, []byte) {
	t.Helper()
	m, _ := manifestWith(t, seq)
	m.Chunk0 = bytes.Clone(m.Chunk0)
	binary.BigEndian.PutUint32(m.Chunk0[24:28], counter)
	m.Chunks[0] = manifest.HashOf(m.Chunk0)
	m.VersionID = []byte(fmt.Sprint(seq, counter))
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return m, enc
}

// A later state of the database numbered at or below the staged manifest
// (its process's clock is behind the one that numbered the staged version,
// e.g. a rescan's) must not be dropped: it is renumbered after it. An
// older state (another process's build that lost the race) is declined.
func TestRegression_PublishRenumbersLaterStateNumberedLower(t *testing.T) {
	d, err := Open(t.TempDir(), "k", Info{Path: "/x", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	m, enc := manifestCounter(t, 1000, 5)
	if ok, err := d.Publish(m, enc); err != nil || !ok {
		t.Fatalf("publish 1000: %v %v", ok, err)
	}
	later, enc := manifestCounter(t, 500, 6)
	if ok, err := d.Publish(later, enc); err != nil || !ok {
		t.Fatalf("publish of a later state numbered 500: published=%v, %v", ok, err)
	}
	if later.Seq != 1001 {
		t.Errorf("renumbered %d, want 1001", later.Seq)
	}
	if got, _, err := d.Manifest(); err != nil || got.Seq != 1001 || !bytes.Equal(got.VersionID, later.VersionID) {
		t.Fatalf("staged = %+v, %v; want the later state as 1001", got, err)
	}
	older, enc := manifestCounter(t, 900, 4)
	if ok, err := d.Publish(older, enc); err != nil || ok {
		t.Fatalf("publish of an older state: published=%v, %v", ok, err)
	}
}
