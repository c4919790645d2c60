package replica_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/replica"
)

// recordHeaderLen is the length of a pack record's header (pack.go):
// magic, length, hash, checksum.
const recordHeaderLen = 4 + 4 + manifest.HashSize + 4

// packFiles returns the packs of the disk cache at dir.
func packFiles(t *testing.T, cache string) []string {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(cache, "packs", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return packs
}

// damageCachedChunk flips the byte at (record start + at) of the record
// holding chunk in the disk cache at dir: at < recordHeaderLen is in the
// header, past it in the data.
func damageCachedChunk(t *testing.T, cache string, chunk []byte, at int) {
	t.Helper()
	for _, p := range packFiles(t, cache) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, chunk); i >= recordHeaderLen {
			b[i-recordHeaderLen+at] ^= 0x5a
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("chunk not in the disk cache")
}

// withCacheAt sets the disk cache directory.
func withCacheAt(dir string) func(*replica.Options) {
	return func(o *replica.Options) { o.CacheDir = dir }
}

// readCounting reads the whole replica through a fresh manager (a process)
// on cache and returns its chunk GETs.
func readCounting(t *testing.T, s *counting, cache string, want []byte) int64 {
	t.Helper()
	if got := readAll(t, open(t, newManager(t, s, withCacheAt(cache)), dbKey, "", "")); !bytes.Equal(got, want) {
		t.Fatal("wrong data")
	}
	return s.chunkGets.Load()
}

// Two managers (two processes' caches) reading one replica at once on
// one cache directory: both read the right data, and a third then
// fetches nothing from the store.
func TestPackCacheSharedByConcurrentReaders(t *testing.T) {
	s := newStore(t)
	d := randomData(11, 40)
	publish(t, s, 100, d, true)
	cache := filepath.Join(t.TempDir(), "cache")
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			m := newManager(t, s, withCacheAt(cache))
			src := open(t, m, dbKey, "", "")
			mf := src.HoldCurrent(false, 0)
			defer src.Release(mf.Seq)
			for i := range mf.Chunks {
				c, err := src.ReadChunk(mf.Seq, i)
				if err != nil || !bytes.Equal(c, d[i*chunkSize:min(len(d), (i+1)*chunkSize)]) {
					t.Errorf("chunk %d: %v (or wrong data)", i, err)
					return
				}
			}
			src.Wait()
		})
	}
	wg.Wait()
	if n := readCounting(t, &counting{Store: s}, cache, d); n != 0 {
		t.Fatalf("a third reader fetched %d chunks, want 0", n)
	}
}

// A writer killed in the middle of an append leaves a pack ending with a
// partial record, or a record of the right length with wrong bytes (the
// file extended, the data not written). Readers serve every whole record,
// never the partial one: that chunk is fetched again, once.
func TestPackCacheTornLastRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(b []byte) []byte
	}{
		{"cut in the data", func(b []byte) []byte { return b[:len(b)-chunkSize/2] }},
		{"cut in the header", func(b []byte) []byte { return b[:len(b)-chunkSize-recordHeaderLen/2] }},
		{"cut after the header", func(b []byte) []byte { return b[:len(b)-chunkSize] }},
		{"data zeroed", func(b []byte) []byte { clear(b[len(b)-chunkSize:]); return b }},
		{"data half written", func(b []byte) []byte { clear(b[len(b)-chunkSize/3:]); return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			d := randomData(12, 10)
			publish(t, s, 100, d, true)
			cache := filepath.Join(t.TempDir(), "cache")
			if n := readCounting(t, &counting{Store: s}, cache, d); n != 9 {
				t.Fatalf("first reader fetched %d chunks, want 9", n)
			}
			packs := packFiles(t, cache)
			if len(packs) != 1 {
				t.Fatalf("%d packs, want 1", len(packs))
			}
			b, err := os.ReadFile(packs[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(packs[0], tc.tear(b), 0o600); err != nil {
				t.Fatal(err)
			}
			if n := readCounting(t, &counting{Store: s}, cache, d); n != 1 {
				t.Fatalf("reader over a torn pack fetched %d chunks, want 1", n)
			}
			if n := readCounting(t, &counting{Store: s}, cache, d); n != 0 {
				t.Fatalf("the next reader fetched %d chunks, want 0 (the torn chunk cached again)", n)
			}
		})
	}
}

// A damaged byte in a pack is never served: a damaged chunk is fetched
// again; a damaged header hides the rest of its pack (fetched again).
func TestPackCacheDamagedByte(t *testing.T) {
	for _, tc := range []struct {
		name       string
		at         int
		maxFetches int64
	}{
		{"magic", 1, 9},
		{"length", 5, 9},
		{"hash", 20, 9},
		{"checksum", recordHeaderLen - 1, 9},
		{"first data byte", recordHeaderLen, 1},
		{"data", recordHeaderLen + chunkSize/2, 1},
		{"last data byte", recordHeaderLen + chunkSize - 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			d := randomData(13, 10)
			publish(t, s, 100, d, true)
			cache := filepath.Join(t.TempDir(), "cache")
			readCounting(t, &counting{Store: s}, cache, d)
			damageCachedChunk(t, cache, d[4*chunkSize:5*chunkSize], tc.at)
			if n := readCounting(t, &counting{Store: s}, cache, d); n < 1 || n > tc.maxFetches {
				t.Fatalf("reader over a damaged pack fetched %d chunks, want 1 to %d", n, tc.maxFetches)
			}
			if n := readCounting(t, &counting{Store: s}, cache, d); n != 0 {
				t.Fatalf("the next reader fetched %d chunks, want 0", n)
			}
		})
	}
}

// A pack deleted under the process appending to it (another process's
// eviction, an operator's rm): the process notices and appends to a new
// pack, which other processes find.
func TestPackCacheDeletedUnderWriter(t *testing.T) {
	s := newStore(t)
	d := randomData(14, 12)
	publish(t, s, 100, d, true)
	cache := filepath.Join(t.TempDir(), "cache")
	m := newManager(t, s, withCacheAt(cache))
	src := open(t, m, dbKey, "", "")
	mf := src.HoldCurrent(false, 0)
	defer src.Release(mf.Seq)
	read := func(from, to int) {
		for i := from; i < to; i++ {
			if c, err := src.ReadChunk(mf.Seq, i); err != nil || !bytes.Equal(c, d[i*chunkSize:(i+1)*chunkSize]) {
				t.Fatalf("chunk %d: %v (or wrong data)", i, err)
			}
		}
		src.Wait()
	}
	read(1, 2)
	packs := packFiles(t, cache)
	if len(packs) != 1 {
		t.Fatalf("%d packs, want 1", len(packs))
	}
	if err := os.Remove(packs[0]); err != nil {
		t.Fatal(err)
	}
	read(11, 12) // far from chunk 1: no readahead of chunks before it
	if after := packFiles(t, cache); len(after) != 1 || after[0] == packs[0] {
		t.Fatalf("packs after the deletion: %v, want one new pack", after)
	}
	c := &counting{Store: s}
	src2 := open(t, newManager(t, c, withCacheAt(cache)), dbKey, "", "")
	mf2 := src2.HoldCurrent(false, 0)
	defer src2.Release(mf2.Seq)
	if got, err := src2.ReadChunk(mf2.Seq, 11); err != nil || !bytes.Equal(got, d[11*chunkSize:]) {
		t.Fatalf("chunk 11 in the new pack: %v (or wrong data)", err)
	}
	if n := c.chunkGets.Load(); n != 0 {
		t.Fatalf("chunk 11 fetched %d times by another reader, want 0 (in the new pack)", n)
	}
}

// A cache directory of the earlier layout (one file per chunk under
// chunks/) is removed by the first write; reads are right throughout.
func TestPackCacheRemovesLegacyLayout(t *testing.T) {
	s := newStore(t)
	d := randomData(15, 6)
	publish(t, s, 100, d, true)
	cache := filepath.Join(t.TempDir(), "cache")
	h := manifest.HashOf(d[2*chunkSize : 3*chunkSize]).String()
	old := filepath.Join(cache, "chunks", h[:2], h)
	if err := os.MkdirAll(filepath.Dir(old), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, bytes.Repeat([]byte{7}, chunkSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := readCounting(t, &counting{Store: s}, cache, d); n != 5 {
		t.Fatalf("reader fetched %d chunks, want 5", n)
	}
	if _, err := os.Lstat(filepath.Join(cache, "chunks")); !os.IsNotExist(err) {
		t.Fatalf("the earlier layout's chunks directory is still there (%v)", err)
	}
	if n := readCounting(t, &counting{Store: s}, cache, d); n != 0 {
		t.Fatalf("second reader fetched %d chunks, want 0", n)
	}
}

// Several managers sharing a small bounded cache, reading a replica larger
// than the bound: right data, and the cache stays within the bound plus
// one pack being appended per manager.
func TestPackCacheBoundedWithSharers(t *testing.T) {
	s := newStore(t)
	d := randomData(16, 60)
	publish(t, s, 100, d, true)
	cache := filepath.Join(t.TempDir(), "cache")
	const bound = 16 * chunkSize
	bounded := func(o *replica.Options) { o.CacheDir, o.DiskCache = cache, bound }
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if got := readAll(t, open(t, newManager(t, s, bounded), dbKey, "", "")); !bytes.Equal(got, d) {
				t.Error("wrong data")
			}
		})
	}
	wg.Wait()
	var total int64
	for _, p := range packFiles(t, cache) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	// Each manager's pack is an eighth of the bound at most.
	if limit := int64(bound + 3*bound/8); total > limit || total == 0 {
		t.Fatalf("disk cache holds %d bytes, want 1 to %d", total, limit)
	}
}
