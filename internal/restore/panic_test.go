package restore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
)

// panickyStore panics on every Get: a bug (or a hostile answer tripping
// one) in the store client.
type panickyStore struct{ blob.Store }

func (panickyStore) Get(context.Context, string) ([]byte, error) { panic("store client bug") }

// TestRegression_RestorePanicFailsRestore: a panic in a goroutine that
// fetches chunks fails the restore with an error; it does not kill the
// process that embeds the restore.
func TestRegression_RestorePanicFailsRestore(t *testing.T) {
	cs := 65536
	first := bytes.Repeat([]byte{1}, cs)
	second := bytes.Repeat([]byte{2}, cs)
	m := &manifest.Manifest{Name: "host:/x.db", Seq: 1, ChunkSize: uint32(cs), Length: int64(2 * cs),
		Chunk0: first, Chunks: []manifest.Hash{manifest.HashOf(first), manifest.HashOf(second)}}
	f, err := os.Create(filepath.Join(t.TempDir(), "out.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Write(context.Background(), panickyStore{emptyStore(t)}, m, f, 4)
	if err == nil || !strings.Contains(err.Error(), "recovered panic") {
		t.Fatalf("Write with a panicking store: %v, want an error about the recovered panic", err)
	}
}
