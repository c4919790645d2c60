package copier

import (
	"bytes"
	"context"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// memFile is an io.WriterAt over a byte slice of the file's length
// (concurrent writes go to distinct chunks).
type memFile struct{ b []byte }

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	return copy(f.b[off:], p), nil
}

// TestDeltaChain uploads a long run of versions (some growing, some
// shrinking the file) with a short chain bound, and restores every one of
// them, byte-identical, from what the store holds: full bases and deltas.
func TestDeltaChain(t *testing.T) {
	s := newMemStore()
	const fullEvery = 5
	c, root := newTestCopier(t, s, func(o *Options) { o.FullEvery = fullEvery })
	ctx := context.Background()
	data := randomBytes(12*testChunk+300, 7)
	want := map[uint64][]byte{}
	const versions = 40
	for seq := uint64(1); seq <= versions; seq++ {
		data[30] = byte(seq)                                          // chunk 0, every version
		data[int(seq)%(len(data)/testChunk)*testChunk+5] ^= byte(seq) // one other chunk
		switch seq {
		case 15:
			data = append(data, randomBytes(3*testChunk, seq)...)
		case 25:
			data = data[:5*testChunk+17]
		}
		stage(t, root, "chain", seq, data)
		if err := c.Upload(ctx, "chain"); err != nil {
			t.Fatalf("upload %d: %v", seq, err)
		}
		want[seq] = bytes.Clone(data)
	}
	fetch := restore.BaseFetcher(ctx, s, "chain")
	var deltas, fulls int
	for seq := uint64(1); seq <= versions; seq++ {
		obj, ok := s.get(names.ManifestKey("chain", seq))
		if !ok {
			t.Fatalf("version %d not stored", seq)
		}
		m, d, err := manifest.Resolve(obj, fetch)
		if err != nil {
			t.Fatalf("version %d: %v", seq, err)
		}
		if d != nil {
			deltas++
			if seq-d.BaseSeq >= fullEvery {
				t.Errorf("version %d: delta against %d, chain longer than %d", seq, d.BaseSeq, fullEvery)
			}
		} else {
			fulls++
		}
		f := memFile{make([]byte, m.Length)}
		if err := restore.Write(ctx, s, m, &f, 4); err != nil {
			t.Fatalf("restore version %d: %v", seq, err)
		}
		if !bytes.Equal(f.b, want[seq]) {
			i := 0
			for i < min(len(f.b), len(want[seq])) && f.b[i] == want[seq][i] {
				i++
			}
			t.Fatalf("version %d restored differently: %d bytes (%d in manifest), want %d; first difference at %d", seq, len(f.b), m.Length, len(want[seq]), i)
		}
	}
	if deltas < versions/2 || fulls < versions/fullEvery {
		t.Fatalf("%d deltas and %d full manifests in %d versions; want mostly deltas and a full one at least every %d", deltas, fulls, versions, fullEvery)
	}
	// latest holds the same delta as manifests/SEQ, not a full list.
	latest, _ := s.get(names.LatestKey("chain"))
	last, _ := s.get(names.ManifestKey("chain", versions))
	if !bytes.Equal(latest, last) {
		t.Fatalf("latest differs from manifests/%d", versions)
	}
	t.Logf("%d versions: %d deltas, %d full manifests", versions, deltas, fulls)
}

// TestFullEveryOneWritesFormat1 checks that FullEvery 1 publishes only
// full manifests.
func TestFullEveryOneWritesFormat1(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s, func(o *Options) { o.FullEvery = 1 })
	data := randomBytes(4*testChunk, 3)
	for seq := uint64(1); seq <= 4; seq++ {
		data[seq] ^= 1
		stage(t, root, "f1", seq, data)
		if err := c.Upload(context.Background(), "f1"); err != nil {
			t.Fatal(err)
		}
		obj, _ := s.get(names.ManifestKey("f1", seq))
		if _, err := manifest.Decode(obj); err != nil {
			t.Fatalf("version %d is not a full manifest: %v", seq, err)
		}
	}
}
