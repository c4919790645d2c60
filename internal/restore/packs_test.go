package restore_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

const packChunk = 64 << 10

// requestCounter counts whole and ranged GETs by prefix, and pack bytes.
type requestCounter struct {
	blob.Store
	chunkGets, packGets, packRanges, packBytes atomic.Int64
}

func (c *requestCounter) Get(ctx context.Context, key string) ([]byte, error) {
	switch {
	case strings.HasPrefix(key, "chunks/"):
		c.chunkGets.Add(1)
	case strings.HasPrefix(key, "packs/"):
		c.packGets.Add(1)
	}
	return c.Store.Get(ctx, key)
}

func (c *requestCounter) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b, err := c.Store.GetRange(ctx, key, off, n)
	if strings.HasPrefix(key, "packs/") {
		c.packRanges.Add(1)
		c.packBytes.Add(int64(len(b)))
	}
	return b, err
}

// packedVersion stores a database of n chunks whose chunks 1.. are in
// packs of perPack records (in file order), chunk 0 inline, and returns
// its manifest (latest) and data.
func packedVersion(t *testing.T, s blob.Store, n, perPack int, seed uint64) (*manifest.Manifest, []byte) {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 2))
	data := make([]byte, n*packChunk-17)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	copy(data[2*packChunk:3*packChunk], make([]byte, packChunk)) // an all-zero chunk
	copy(data[4*packChunk:5*packChunk], data[6*packChunk:7*packChunk])
	const name = "h:/packed.db"
	m := &manifest.Manifest{Name: name, Seq: 7, CommitTime: time.Now(), PageSize: 4096, ChunkSize: packChunk,
		Length: int64(len(data)), VersionID: []byte("v"), HeaderHash: manifest.HashOf(data[:100]), Locs: map[manifest.Hash]manifest.Location{}}
	var b manifest.PackBuilder
	flush := func() {
		if b.Len() == 0 {
			return
		}
		obj, pn, locs := b.Finish()
		for h, l := range locs {
			m.Locs[h] = l
		}
		if err := s.Put(ctx, names.PackKey(pn.String()), obj); err != nil {
			t.Fatal(err)
		}
		b = manifest.PackBuilder{}
	}
	recs := 0
	seen := map[manifest.Hash]bool{}
	for i := 0; i*packChunk < len(data); i++ {
		c := data[i*packChunk : min(len(data), (i+1)*packChunk)]
		h := manifest.HashOf(c)
		m.Chunks = append(m.Chunks, h)
		if i == 0 {
			m.Chunk0 = bytes.Clone(c)
			continue
		}
		if h == manifest.ZeroChunkHash(len(c)) || seen[h] {
			continue
		}
		seen[h] = true
		b.Add(h, manifest.EncodeChunk(c))
		if recs++; recs%perPack == 0 {
			flush()
		}
	}
	flush()
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, names.LatestKey(names.Key(name)), enc); err != nil {
		t.Fatal(err)
	}
	return m, data
}

// TestPackedRestoreRequests: a restore reads each pack it needs whole
// with one ranged GET, and a pack it needs one record of with one small
// range; ToFile and a restore to a stream give
// the same bytes.
func TestPackedRestoreRequests(t *testing.T) {
	ctx := context.Background()
	fs, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	s := &requestCounter{Store: fs}
	m, data := packedVersion(t, fs, 40, 16, 1)
	packs := len(m.PackNames())
	for _, parallel := range []int{1, 8} {
		*s = requestCounter{Store: fs}
		f := &memFile{b: make([]byte, m.Length)}
		if err := restore.Write(ctx, s, m, f, parallel); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.b, data) {
			t.Fatalf("%d workers: restored bytes differ", parallel)
		}
		if got := s.packRanges.Load(); got != int64(packs) || s.chunkGets.Load() != 0 || s.packGets.Load() != 0 {
			t.Errorf("%d workers: %d ranged GETs of %d packs, %d chunk GETs", parallel, got, packs, s.chunkGets.Load())
		}
	}
	out := filepath.Join(t.TempDir(), "out.db")
	if err := restore.ToFile(ctx, s, m, out); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ToFile: %v", err)
	}

	// A later version that needs one record of each pack (the rest
	// rewritten as chunk objects): one small range each, not whole packs.
	sparse := *m
	sparse.Locs = map[manifest.Hash]manifest.Location{}
	sparse.Seq++
	sparse.Chunks = append([]manifest.Hash(nil), m.Chunks...)
	sparseData := bytes.Clone(data)
	for i := 1; i < len(m.Chunks); i++ {
		if i%13 == 0 {
			if l, ok := m.Locs[m.Chunks[i]]; ok {
				sparse.Locs[m.Chunks[i]] = l
			}
			continue
		}
		c := sparseData[i*packChunk : min(len(sparseData), (i+1)*packChunk)]
		c[0] ^= 0xff
		h := manifest.HashOf(c)
		sparse.Chunks[i] = h
		if err := fs.Put(ctx, names.ChunkKey(h.String()), manifest.EncodeChunk(c)); err != nil {
			t.Fatal(err)
		}
	}
	*s = requestCounter{Store: fs}
	f := &memFile{b: make([]byte, sparse.Length)}
	if err := restore.Write(ctx, s, &sparse, f, 4); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.b, sparseData) {
		t.Fatal("sparse version: restored bytes differ")
	}
	if got, want := s.packRanges.Load(), int64(len(sparse.Locs)); got != want {
		t.Errorf("sparse version: %d ranged GETs, want one per needed record (%d)", got, want)
	}
	if max := int64(len(sparse.Locs)) * (packChunk + 1); s.packBytes.Load() > max {
		t.Errorf("sparse version read %d pack bytes, more than its %d records", s.packBytes.Load(), len(sparse.Locs))
	}
}

type memFile struct{ b []byte }

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	copy(f.b[off:], p)
	return len(p), nil
}
