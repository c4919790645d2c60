package replica

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// A lookup of a cached chunk at a length other than its own (a corrupt or
// hostile manifest: one hash, one content, one length) misses without
// harm: the record stays indexed for the readers of the right length, and
// no warning calls a sound record damaged.
func TestDiskCacheLookupAtOtherLengthKeepsRecord(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c, err := newDiskCache(t.TempDir(), 1<<20, log)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{7}, 4096)
	h := manifest.HashOf(data)
	c.put(h, data)
	for _, n := range []int{8192, 2048} {
		if _, ok := c.get(h, n); ok {
			t.Fatalf("a %d-byte chunk served for a %d-byte lookup", len(data), n)
		}
	}
	got, ok := c.get(h, len(data))
	if !ok || !bytes.Equal(got, data) {
		t.Fatalf("the record was dropped by lookups at other lengths (hit %v)", ok)
	}
	if strings.Contains(logs.String(), "does not match") {
		t.Errorf("a sound record reported as damaged: %s", logs.String())
	}
}

// Many short-lived processes each leave a small pack (one chunk each,
// far below the byte bound): the cache also bounds the number of packs, so
// that a reader does not hold one open file per pack ever written (an
// unbounded number of descriptors, and a listing that stats them all on
// every refresh). The most recent packs stay.
func TestDiskCacheBoundsPackCount(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	var hs []manifest.Hash
	for i := range maxPacks + 50 {
		c, err := newDiskCache(dir, 1<<30, log)
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte{byte(i), byte(i >> 8), 1}, 1000)
		h := manifest.HashOf(data)
		c.put(h, data)
		c.close()
		hs = append(hs, h)
	}
	entries, err := os.ReadDir(filepath.Join(dir, packsDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > maxPacks+1 {
		t.Fatalf("%d packs in the cache, bound %d", len(entries), maxPacks)
	}
	r, err := newDiskCache(dir, 1<<30, log)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if _, ok := r.get(hs[len(hs)-1], 3000); !ok {
		t.Fatal("the most recent chunk was evicted")
	}
	r.mu.RLock()
	open := len(r.packs)
	r.mu.RUnlock()
	if open > maxPacks+1 {
		t.Fatalf("a reader holds %d packs open, bound %d", open, maxPacks)
	}
}

// The pack count bound never caps a large cache below its byte bound.
func TestDiskCachePackLimit(t *testing.T) {
	for _, tc := range []struct {
		max  int64
		want int
	}{
		{1 << 20, maxPacks},
		{1 << 30, maxPacks},
		{100 << 30, 2 * 100 << 30 / maxPackSize},
	} {
		c, err := newDiskCache(t.TempDir(), tc.max, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if c.packLimit != tc.want || int64(c.packLimit)*c.packMax < tc.max {
			t.Errorf("max %d: pack limit %d (packs of %d), want %d", tc.max, c.packLimit, c.packMax, tc.want)
		}
	}
}
