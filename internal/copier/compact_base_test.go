package copier

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// sparseDB returns a database of 40 chunks whose chunk 0 (inline in every
// full manifest) is mostly zeros, as SQLite's first pages usually are,
// and whose other chunks are random; only chunk 0 changes between
// versions, so that a delta is a small fraction of a full manifest.
func sparseDB(seq uint64) []byte {
	b := randomBytes(40*testChunk, 99)
	clear(b[:testChunk])
	copy(b, "SQLite format 3\x00")
	copy(b[100:], randomBytes(200, 1))
	b[24] = byte(seq) // the change counter moves on every commit
	return b
}

// checkVersion restores version seq of key from s, byte for byte equal to
// want, and reports whether its manifest object is a delta.
func checkVersion(t *testing.T, s *memStore, key string, seq uint64, want []byte) (delta bool) {
	t.Helper()
	ctx := context.Background()
	obj, ok := s.get(names.ManifestKey(key, seq))
	if !ok {
		t.Fatalf("version %d not stored", seq)
	}
	m, d, err := manifest.Resolve(obj, restore.BaseFetcher(ctx, s, key))
	if err != nil {
		t.Fatalf("version %d: %v", seq, err)
	}
	f := memFile{make([]byte, m.Length)}
	if err := restore.Write(ctx, s, m, &f, 2); err != nil {
		t.Fatalf("restore version %d: %v", seq, err)
	}
	if !bytes.Equal(f.b, want) {
		t.Fatalf("version %d restored differently (%d bytes, want %d)", seq, len(f.b), len(want))
	}
	return d != nil
}

// baseBytes returns the bytes the record of key keeps for its delta base
// in the first target (-1 without a record).
func baseBytes(c *Copier, key string) int {
	c.mu.Lock()
	st := c.dbs[key]
	c.mu.Unlock()
	if st == nil {
		return -1
	}
	st.up.Lock()
	defer st.up.Unlock()
	if len(st.bases) == 0 {
		return 0
	}
	return len(st.bases[0].enc)
}

// TestDeltaBaseKeptCompressed: the record of an idle database keeps its
// delta base as the compressed object put (a fraction of the 64 KiB
// chunk 0 it describes), the next versions are still deltas against it
// and restore byte for byte; after the record is forgotten the next
// version is published full (byte-exact), and becomes the new base.
func TestDeltaBaseKeptCompressed(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	c, root := newTestCopier(t, s, func(o *Options) { o.ForgetIdle = time.Nanosecond })
	want := map[uint64][]byte{}
	upload := func(seq uint64) {
		t.Helper()
		want[seq] = sparseDB(seq)
		stage(t, root, "small", seq, want[seq])
		if err := c.Upload(ctx, "small"); err != nil {
			t.Fatalf("upload %d: %v", seq, err)
		}
	}
	upload(1)
	if n := baseBytes(c, "small"); n <= 0 || n > testChunk/4 {
		t.Fatalf("the record keeps a base of %d bytes for a chunk 0 of %d, want 1..%d", n, testChunk, testChunk/4)
	}
	upload(2)
	upload(3)
	if checkVersion(t, s, "small", 1, want[1]) {
		t.Fatal("the first version is a delta")
	}
	checkVersion(t, s, "small", 2, want[2]) // full or delta: the record learns the store's latest with it
	if !checkVersion(t, s, "small", 3, want[3]) {
		t.Fatal("version 3 is full, want a delta against the kept base")
	}

	c.Scan(ctx) // idle for more than ForgetIdle: the record goes
	if n := baseBytes(c, "small"); n != -1 {
		t.Fatalf("record still held after ForgetIdle (base of %d bytes)", n)
	}
	upload(4)
	if checkVersion(t, s, "small", 4, want[4]) {
		t.Fatal("the first version after the record was forgotten is a delta (against a base it no longer knows)")
	}
	upload(5)
	upload(6)
	checkVersion(t, s, "small", 5, want[5])
	if !checkVersion(t, s, "small", 6, want[6]) {
		t.Fatal("version 6 is full, want a delta against the base made after the record was forgotten")
	}
}

// TestUndecodableDeltaBasePublishesFull: a kept base that does not decode
// (damaged in memory) costs a full manifest, not a failed or wrong upload.
func TestUndecodableDeltaBasePublishesFull(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	c, root := newTestCopier(t, s)
	v1 := sparseDB(1)
	stage(t, root, "bad", 1, v1)
	if err := c.Upload(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	st := c.dbs["bad"]
	c.mu.Unlock()
	st.up.Lock()
	for i := range st.bases {
		st.bases[i].enc = bytes.Repeat([]byte{0xa5}, len(st.bases[i].enc))
	}
	st.up.Unlock()
	v2 := sparseDB(2)
	stage(t, root, "bad", 2, v2)
	if err := c.Upload(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	if checkVersion(t, s, "bad", 2, v2) {
		t.Fatal("version 2 published as a delta against an undecodable base")
	}
	v3 := sparseDB(3)
	stage(t, root, "bad", 3, v3)
	if err := c.Upload(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	if !checkVersion(t, s, "bad", 3, v3) {
		t.Fatal("version 3 is full, want a delta against version 2")
	}
}
