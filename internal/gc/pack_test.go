package gc_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// putPacked stores version seq of data as a copier with packs would: the
// chunks at indices pack go into one new pack, chunks prev places in a
// pack keep their location, the others are chunk objects. The manifest
// (full, or a delta against base) goes to manifests/SEQ and latest.
func putPacked(t *testing.T, s blob.Store, seq uint64, data []byte, pack []int, prev, base *manifest.Manifest) (*manifest.Manifest, string) {
	t.Helper()
	ctx := context.Background()
	cs := gctest.ChunkSize
	m := &manifest.Manifest{Name: gctest.Name(0), Seq: seq, CommitTime: time.Now(), PageSize: 4096, ChunkSize: uint32(cs),
		Length: int64(len(data)), VersionID: []byte(fmt.Sprint(seq)), HeaderHash: manifest.HashOf(data[:100]),
		Locs: map[manifest.Hash]manifest.Location{}}
	inPack := map[int]bool{}
	for _, i := range pack {
		inPack[i] = true
	}
	var b manifest.PackBuilder
	for i := 0; i*cs < len(data); i++ {
		c := data[i*cs : min(len(data), (i+1)*cs)]
		h := manifest.HashOf(c)
		m.Chunks = append(m.Chunks, h)
		switch {
		case i == 0:
			m.Chunk0 = bytes.Clone(c)
		case inPack[i]:
			b.Add(h, manifest.EncodeChunk(c))
		case prev != nil && prev.Locs[h] != (manifest.Location{}):
			m.Locs[h] = prev.Locs[h]
		default:
			if err := s.Put(ctx, names.ChunkKey(h.String()), manifest.EncodeChunk(c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var packKey string
	if len(pack) > 0 {
		obj, name, locs := b.Finish()
		for h, l := range locs {
			m.Locs[h] = l
		}
		packKey = names.PackKey(name.String())
		if err := s.Put(ctx, packKey, obj); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := m.Encode()
	if base != nil {
		enc, err = manifest.EncodeDelta(m, base)
	}
	if err != nil {
		t.Fatal(err)
	}
	key := gctest.Key(0)
	for _, k := range []string{names.ManifestKey(key, seq), names.LatestKey(key)} {
		if err := s.Put(ctx, k, enc); err != nil {
			t.Fatal(err)
		}
	}
	return m, packKey
}

// TestPacksKeptWhileReferenced: a pack stays while any kept manifest
// places a chunk in it (even one chunk of it, and through a delta's base)
// and is deleted, like an unreferenced chunk, once none does.
func TestPacksKeptWhileReferenced(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	cs := gctest.ChunkSize
	data := bytes.Repeat([]byte("0123456789abcdef"), 8*cs/16)
	for i := range 8 {
		data[i*cs+5] = byte(i)
	}
	// v1: chunks 1-6 in pack P1, 7 a chunk object.
	v1, p1 := putPacked(t, s, 1000, data, []int{1, 2, 3, 4, 5, 6}, nil, nil)
	// v2 (a delta on v1): chunks 1-5 rewritten into pack P2; chunk 6
	// still in P1 (one record of it).
	for i := 1; i <= 5; i++ {
		data[i*cs+9] = 'x'
	}
	v2, p2 := putPacked(t, s, 1001, data, []int{1, 2, 3, 4, 5}, v1, v1)
	// v3 (full): chunk 6 changes (chunk object); P1 is referenced by v1
	// and v2 only.
	data[6*cs+9] = 'y'
	v3, _ := putPacked(t, s, 1002, data, nil, v2, nil)
	if len(v3.Locs) != 5 {
		t.Fatalf("v3 places %d chunks, want 5 (in P2)", len(v3.Locs))
	}
	run := func(keep int) *gc.Summary {
		t.Helper()
		age(t, s, 48*time.Hour)
		sum, err := gc.Run(ctx, s, gc.Options{Policy: retention.Policy{KeepLast: keep}, Grace: time.Hour, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if sum.MissingChunks != 0 {
			t.Fatalf("missing chunks %d (%v)", sum.MissingChunks, sum.MissingSample)
		}
		return sum
	}
	// Keep v2 and v3: v2 is a delta on v1, so v1 is kept (its base) and
	// P1 with it.
	if sum := run(2); sum.PacksDeleted != 0 || !exists(t, s, p1) || !exists(t, s, p2) {
		t.Fatalf("keeping 2 versions: %d packs deleted, P1 %v, P2 %v", sum.PacksDeleted, exists(t, s, p1), exists(t, s, p2))
	}
	// Keep v3 only: P1 is unreferenced and past the grace period.
	sum := run(1)
	if exists(t, s, p1) || sum.PacksDeleted != 1 {
		t.Fatalf("keeping v3 only: P1 still there (%d packs deleted)", sum.PacksDeleted)
	}
	if !exists(t, s, p2) {
		t.Fatal("P2, referenced by the latest version, was deleted")
	}
	m, err := restore.Latest(ctx, s, gctest.Key(0))
	if err != nil {
		t.Fatal(err)
	}
	w := &memFile{b: make([]byte, m.Length)}
	if err := restore.Write(ctx, s, m, w, 4); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.b, data) {
		t.Fatal("restored bytes differ after the collection")
	}
	// A young unreferenced pack survives the grace period.
	orphanPack := names.PackKey(manifest.HashOf([]byte("orphan pack")).String())
	if err := s.Put(ctx, orphanPack, []byte("orphan pack")); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.Run(ctx, s, gc.Options{Policy: retention.Policy{KeepLast: 1}, Grace: time.Hour, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if !exists(t, s, orphanPack) {
		t.Fatal("a pack younger than the grace period was deleted")
	}
}

type memFile struct{ b []byte }

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	copy(f.b[off:], p)
	return len(p), nil
}
