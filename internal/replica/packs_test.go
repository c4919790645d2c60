package replica_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// publishPacked stores data as version seq of dbName with every chunk
// but chunk 0 in one pack, makes it latest, and returns the pack's key.
func publishPacked(t *testing.T, s blob.Store, seq uint64, data []byte) (*manifest.Manifest, string) {
	t.Helper()
	m := publish(t, blob.Store(discardChunks{s}), seq, data, false)
	var b manifest.PackBuilder
	for i := 1; i < len(m.Chunks); i++ {
		b.Add(m.Chunks[i], manifest.EncodeChunk(data[i*chunkSize:min(len(data), (i+1)*chunkSize)]))
	}
	obj, name, locs := b.Finish()
	m.Locs = locs
	ctx := context.Background()
	pk := names.PackKey(name.String())
	if err := s.Put(ctx, pk, obj); err != nil {
		t.Fatal(err)
	}
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{names.ManifestKey(dbKey, seq), names.LatestKey(dbKey)} {
		if err := s.Put(ctx, key, enc); err != nil {
			t.Fatal(err)
		}
	}
	return m, pk
}

// discardChunks drops chunk objects (publish writes them; packed versions
// must not rely on them).
type discardChunks struct{ blob.Store }

func (d discardChunks) Put(ctx context.Context, key string, data []byte) error {
	if strings.HasPrefix(key, "chunks/") {
		return nil
	}
	return d.Store.Put(ctx, key, data)
}

// ranged counts ranged GETs of packs.
type ranged struct {
	*counting
	packRanges, packBytes atomic.Int64
}

func (r *ranged) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b, err := r.counting.GetRange(ctx, key, off, n)
	if strings.HasPrefix(key, "packs/") {
		r.packRanges.Add(1)
		r.packBytes.Add(int64(len(b)))
	}
	return b, err
}

// TestPackedVersionReads: a replica reads a packed version byte for byte,
// each chunk with one ranged GET of its record (never the whole pack, never
// a chunk object); a damaged record is an error, never data.
func TestPackedVersionReads(t *testing.T) {
	s := newStore(t)
	data := randomData(3, 7)
	copy(data[3*chunkSize:], bytes.Repeat([]byte{'z'}, chunkSize)) // compresses
	m, pk := publishPacked(t, s, 100, data)
	if n := len(m.Locs); n != 6 {
		t.Fatalf("%d chunks placed, want 6", n)
	}
	rs := &ranged{counting: &counting{Store: s}}
	mg := newManager(t, rs)
	src := open(t, mg, dbKey, "", "")
	if got := readAll(t, src); !bytes.Equal(got, data) {
		t.Fatal("packed version does not read its data")
	}
	if n, cg := rs.packRanges.Load(), rs.chunkGets.Load(); n != 6 || cg != 0 {
		t.Errorf("%d ranged GETs of the pack and %d chunk GETs, want 6 and 0", n, cg)
	}
	obj, err := s.Get(context.Background(), pk)
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.packBytes.Load(); got != int64(len(obj)) {
		t.Errorf("read %d bytes of the pack, want its %d (each record once)", got, len(obj))
	}

	// A flipped byte in one record: that chunk fails, as corrupt.
	l := m.Locs[m.Chunks[5]]
	bad := bytes.Clone(obj)
	bad[l.Offset+l.Length-3] ^= 1
	if err := s.Put(context.Background(), pk, bad); err != nil {
		t.Fatal(err)
	}
	src2 := open(t, newManager(t, s), dbKey, "", "")
	cur := src2.HoldCurrent(false, 0)
	defer src2.Release(cur.Seq)
	if c, err := src2.ReadChunk(cur.Seq, 4); err != nil || !bytes.Equal(c, data[4*chunkSize:5*chunkSize]) {
		t.Fatalf("an intact record of the damaged pack: %v", err)
	}
	c, err := src2.ReadChunk(cur.Seq, 5)
	if err == nil || c != nil || !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("damaged record: %d bytes, %v; want a corrupt-chunk error", len(c), err)
	}
}
