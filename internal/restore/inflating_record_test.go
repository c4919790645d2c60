package restore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// TestParallelRestoreInflatingRecord: a record in the middle of a pack
// whose zstd frame inflates past the chunk length (a hostile or corrupt
// store) fails the restore with a corrupt chunk, however the workers
// reuse their decode buffers.
func TestParallelRestoreInflatingRecord(t *testing.T) {
	ctx := context.Background()
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	const n = 9
	m := &manifest.Manifest{Name: "h:/inflate.db", Seq: 1, CommitTime: time.Now(), PageSize: 4096, ChunkSize: packChunk,
		Length: n * packChunk, VersionID: []byte("v"), Locs: map[manifest.Hash]manifest.Location{}}
	var pb manifest.PackBuilder
	for i := range n {
		c := bytes.Repeat([]byte{byte(i + 1), 'x'}, packChunk/2)
		h := manifest.HashOf(c)
		m.Chunks = append(m.Chunks, h)
		if i == 0 {
			m.Chunk0, m.HeaderHash = c, manifest.HashOf(c[:100])
			continue
		}
		obj := manifest.EncodeChunk(c)
		if i == n/2 {
			obj = manifest.EncodeChunk(bytes.Repeat(c, 4)) // 256 KiB for a 64 KiB chunk
		}
		pb.Add(h, obj)
	}
	obj, pn, locs := pb.Finish()
	for h, l := range locs {
		m.Locs[h] = l
	}
	if err := s.Put(ctx, names.PackKey(pn.String()), obj); err != nil {
		t.Fatal(err)
	}
	for _, parallel := range []int{1, 8} {
		f := &memFile{b: make([]byte, m.Length)}
		if err := restore.Write(ctx, s, m, f, parallel); !errors.Is(err, manifest.ErrCorruptChunk) {
			t.Errorf("%d workers: %v, want a corrupt chunk", parallel, err)
		}
	}
}
