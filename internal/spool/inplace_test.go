package spool

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// Publishing versions of the same size in quick succession reuses two
// inodes (where the file system can exchange), and no two versions share a
// Stamp: the copier decides from stamps alone whether a version is new. The
// rename fallback gives versions the same increasing times (where the file
// system keeps them; see coarse_test.go otherwise).
func TestPublishStampsNeverRepeat(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback bool // as on a file system without RENAME_EXCHANGE
	}{{"exchange", false}, {"rename fallback", true}} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(t.TempDir(), "k", Info{Path: "/x", Name: "n"})
			if err != nil {
				t.Fatal(err)
			}
			d.noExchange.Store(tc.fallback)
			seen := map[Stamp]uint64{}
			inodes := map[uint64]bool{}
			for seq := uint64(1); seq <= 50; seq++ {
				m, enc := manifestWith(t, seq)
				if ok, err := d.Publish(m, enc); err != nil || !ok {
					t.Fatalf("publish %d: %v %v", seq, ok, err)
				}
				s, err := d.ManifestStamp()
				if err != nil {
					t.Fatal(err)
				}
				if prev, dup := seen[s]; dup || !s.Reliable() {
					t.Fatalf("versions %d and %d share stamp %+v (or it is unreliable)", prev, seq, s)
				}
				seen[s] = seq
				inodes[s.Ino] = true
				// The version cache describes the published file, so
				// the next publish need not decode it.
				st, err := os.Stat(filepath.Join(d.Path, "manifest"))
				if err != nil {
					t.Fatal(err)
				}
				if c := d.seqCache.Load(); c == nil || c.stat != stampOf(st) || c.seq != seq {
					t.Fatalf("version cache after publish %d: %+v, file %+v", seq, c, stampOf(st))
				}
				if got, _, err := d.Manifest(); err != nil || got.Seq != seq {
					t.Fatalf("staged after publish %d: %+v %v", seq, got, err)
				}
			}
			switch {
			case tc.fallback:
				if ents, _ := os.ReadDir(filepath.Join(d.Path, "tmp")); len(ents) != 0 {
					t.Errorf("rename fallback left temp files: %v", ents)
				}
			case d.noExchange.Load():
				t.Logf("this file system cannot exchange files or keep nanosecond times: %d inodes used", len(inodes))
			case len(inodes) != 2:
				t.Errorf("%d inodes for 50 versions, want 2 (the manifest and its spare)", len(inodes))
			}
		})
	}
}

// An upload record left by an older version of this code as a hard link to
// the staged manifest must not change when that inode is reused.
func TestPublishDoesNotRewriteLinkedFiles(t *testing.T) {
	d, err := Open(t.TempDir(), "k", Info{Path: "/x", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	m1, enc1 := manifestWith(t, 1)
	if _, err := d.Publish(m1, enc1); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(d.Path, "manifest"), filepath.Join(d.Path, "uploaded")); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(2); seq <= 5; seq++ {
		m, enc := manifestWith(t, seq)
		if _, err := d.Publish(m, enc); err != nil {
			t.Fatal(err)
		}
		if up, _, err := d.Uploaded(); err != nil || up == nil || up.Seq != 1 {
			t.Fatalf("after publishing %d the upload record says %+v (%v), want version 1", seq, up, err)
		}
	}
	_, enc5 := manifestWith(t, 5)
	if err := d.MarkUploaded(enc5); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := d.Manifest(); m == nil || m.Seq != 5 {
		t.Fatalf("staged = %+v, want 5", m)
	}
}

// Readers racing with publishers and upload records never see a damaged
// or older-than-read manifest.
func TestConcurrentReadsDuringRewrites(t *testing.T) {
	d, err := Open(t.TempDir(), "k", Info{Path: "/x", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	const versions = 400
	encs := make([][]byte, versions+1)
	for seq := uint64(1); seq <= versions; seq++ {
		_, encs[seq] = manifestWith(t, seq, []byte{byte(seq)}, []byte{byte(seq >> 8)})
	}
	m1, _ := manifestWith(t, 1, []byte{1}, []byte{0})
	if _, err := d.Publish(m1, encs[1]); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last, lastUp uint64
			for !done.Load() {
				m, _, err := d.Manifest()
				if err != nil || m == nil {
					t.Errorf("read staged: %+v %v", m, err)
					return
				}
				if m.Seq < last {
					t.Errorf("staged went back from %d to %d", last, m.Seq)
				}
				last = m.Seq
				up, _, err := d.Uploaded()
				if err != nil {
					t.Errorf("read upload record: %v", err)
					return
				}
				if up != nil {
					if up.Seq < lastUp {
						t.Errorf("upload record went back from %d to %d", lastUp, up.Seq)
					}
					lastUp = up.Seq
				}
			}
		}()
	}
	for seq := uint64(2); seq <= versions; seq++ {
		m, _ := manifestWith(t, seq, []byte{byte(seq)}, []byte{byte(seq >> 8)})
		unlock, err := d.Lock()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Publish(m, encs[seq]); err != nil {
			t.Fatal(err)
		}
		unlock()
		if err := d.MarkUploaded(encs[seq-1]); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
}
