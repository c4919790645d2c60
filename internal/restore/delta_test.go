package restore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// TestDeltaLoaders: Latest, Version and At return resolved manifests of
// deltas; a base replaced by another manifest, or gone, makes the delta
// corrupt, never another database state.
func TestDeltaLoaders(t *testing.T) {
	ctx := context.Background()
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	f := &gctest.Fixture{Data: map[string]map[uint64][]byte{}}
	data := make([]byte, 4*gctest.ChunkSize)
	name, key := gctest.Name(0), gctest.Key(0)
	data[1] = 1
	base := f.Put(t, s, name, 10, data)
	data[2*gctest.ChunkSize] = 2
	f.PutDelta(t, s, name, 11, data, base)
	if n := f.CheckRestores(t, s); n != 2 {
		t.Fatalf("%d versions restored, want 2", n)
	}
	for what, load := range map[string]func() (*manifest.Manifest, error){
		"latest":  func() (*manifest.Manifest, error) { return restore.Latest(ctx, s, key) },
		"version": func() (*manifest.Manifest, error) { return restore.Version(ctx, s, key, 11) },
		"at":      func() (*manifest.Manifest, error) { return restore.At(ctx, s, key, time.Now()) },
	} {
		m, err := load()
		if err != nil || m.Seq != 11 || len(m.Chunks) != 4 {
			t.Fatalf("%s: %v, %v", what, m, err)
		}
	}
	// Another full manifest numbered like the base.
	data[3*gctest.ChunkSize] = 3
	f.Put(t, s, name, 10, data)
	if err := s.Put(ctx, names.LatestKey(key), mustGet(t, s, names.ManifestKey(key, 11))); err != nil {
		t.Fatal(err)
	}
	// In order: the last one deletes the base.
	for _, c := range []struct {
		what string
		load func() (*manifest.Manifest, error)
	}{
		{"latest, other base", func() (*manifest.Manifest, error) { return restore.Latest(ctx, s, key) }},
		{"version, other base", func() (*manifest.Manifest, error) { return restore.Version(ctx, s, key, 11) }},
		{"version, no base", func() (*manifest.Manifest, error) {
			if err := s.Delete(ctx, names.ManifestKey(key, 10)); err != nil {
				t.Fatal(err)
			}
			return restore.Version(ctx, s, key, 11)
		}},
	} {
		if _, err := c.load(); !errors.Is(err, manifest.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", c.what, err)
		}
	}
}

func mustGet(t *testing.T, s *fileblob.Store, key string) []byte {
	t.Helper()
	b, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
