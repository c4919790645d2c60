package restore_test

import (
	"context"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// TestParallelRestoreCompressedChunks: workers that decode every
// compressed record of a pack into one reused buffer still write each
// chunk's own bytes (each chunk of the output hashes to the manifest's).
func TestParallelRestoreCompressedChunks(t *testing.T) {
	ctx := context.Background()
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	m, keys := bulkReplica(t, s, 40<<20)
	if len(keys) < 2 {
		t.Fatalf("%d packs, want several", len(keys))
	}
	for _, parallel := range []int{1, 2, 8} {
		f := &memFile{b: make([]byte, m.Length)}
		if err := restore.Write(ctx, s, m, f, parallel); err != nil {
			t.Fatal(err)
		}
		for i, h := range m.Chunks {
			c := f.b[i*packChunk : min(len(f.b), (i+1)*packChunk)]
			if manifest.HashOf(c) != h {
				t.Fatalf("%d workers: chunk %d differs", parallel, i)
			}
		}
	}
}
