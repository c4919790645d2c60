package copier

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// touchStore is a memStore that records touches.
type touchStore struct {
	*memStore
	mu      sync.Mutex
	touched []string
}

func (s *touchStore) Touch(ctx context.Context, key string) error {
	if err := s.begin(ctx, "touch", key); err != nil {
		return err
	}
	if _, ok := s.get(key); !ok {
		return blob.ErrNotFound
	}
	s.mu.Lock()
	s.touched = append(s.touched, key)
	s.mu.Unlock()
	return nil
}

// TestReliedOnChunksTouched: a chunk that a manifest lists without an
// upload, and that is neither in the upload record nor in the known-chunk
// cache, is touched (which resets its time for the store's collections)
// rather than merely checked.
func TestReliedOnChunksTouched(t *testing.T) {
	s := &touchStore{memStore: newMemStore()}
	a, rootA := newTestCopier(t, s)
	data := randomBytes(3*testChunk, 5)
	m := stage(t, rootA, "db1", 10, data)
	a.Notify("db1")
	waitFor(t, 5*time.Second, "first upload", func() bool { return a.Stats().Manifests == 1 })

	// Another host's copier (a fresh cache) publishes a database that
	// shares chunk 1 without having it staged.
	b, rootB := newTestCopier(t, s, func(o *Options) { o.GCGrace = 8 * time.Second })
	if b.opts.KnownChunkTTL != 2*time.Second {
		t.Errorf("known-chunk lifetime %v with an 8s grace period, want 2s", b.opts.KnownChunkTTL)
	}
	stage(t, rootB, "db2", 20, data)
	d, err := spool.Existing(rootB, "db2")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveChunk(m.Chunks[1]); err != nil {
		t.Fatal(err)
	}
	b.Notify("db2")
	waitFor(t, 5*time.Second, "second upload", func() bool { return b.Stats().Manifests == 1 })
	s.mu.Lock()
	touched := slices.Clone(s.touched)
	s.mu.Unlock()
	if !slices.Contains(touched, names.ChunkKey(m.Chunks[1].String())) {
		t.Fatalf("touched %v, want chunk 1 (%s)", touched, m.Chunks[1])
	}
	if n := s.count("exists"); n != 0 {
		t.Fatalf("%d existence checks where the store can touch", n)
	}
}
