package replica

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// With the disk writer maxPending chunks behind, a fetched chunk is served
// and left out of the disk cache: neither the reader nor the fetch waits
// for the disk (the fetcher used to write the chunk itself). Once the
// writer has caught up, fetched chunks are cached again.
func TestDiskWriterBehindDropsInsteadOfBlocking(t *testing.T) {
	mg, store := newCachedManager(t)
	const size = 64 << 10
	m := &manifest.Manifest{Name: "db", Seq: 1, ChunkSize: size, Length: 3 * size, PageSize: 4096}
	var data [][]byte
	for i := range 3 {
		c := bytes.Repeat([]byte{byte(i + 1)}, size)
		data = append(data, c)
		h := manifest.HashOf(c)
		m.Chunks = append(m.Chunks, h)
		if i == 0 {
			m.Chunk0 = c
			continue
		}
		if err := store.Put(context.Background(), names.ChunkKey(h.String()), manifest.EncodeChunk(c)); err != nil {
			t.Fatal(err)
		}
	}
	onDisk := func(i int) bool {
		return mg.disk.has(m.Chunks[i])
	}

	// The writer is behind: maxPending chunks wait (no writer runs, so
	// they stay).
	mg.flightMu.Lock()
	for k := range maxPending {
		mg.pending[manifest.HashOf([]byte{byte(k), byte(k >> 8), 'x'})] = nil
	}
	mg.flightMu.Unlock()
	got, err := mg.chunk(m, 1, nil)
	if err != nil || !bytes.Equal(got, data[1]) {
		t.Fatalf("chunk 1 with the writer behind: %v (right data: %v)", err, bytes.Equal(got, data[1]))
	}
	mg.Wait()
	if s := mg.Stats(); s.DiskBehind != 1 || s.ChunkFetches != 1 {
		t.Fatalf("stats %+v, want 1 fetch and 1 chunk left out of the disk cache", s)
	}
	mg.flightMu.Lock()
	_, pending := mg.pending[m.Chunks[1]]
	n := len(mg.pending)
	mg.flightMu.Unlock()
	if pending || n != maxPending || onDisk(1) {
		t.Fatalf("dropped chunk: pending %v (%d pending), on disk %v", pending, n, onDisk(1))
	}

	// Caught up: the next fetched chunk is written.
	mg.flightMu.Lock()
	clear(mg.pending)
	mg.flightMu.Unlock()
	if got, err := mg.chunk(m, 2, nil); err != nil || !bytes.Equal(got, data[2]) {
		t.Fatalf("chunk 2: %v", err)
	}
	mg.Wait()
	if !onDisk(2) || mg.Stats().DiskBehind != 1 {
		t.Fatalf("chunk 2 on disk %v, stats %+v", onDisk(2), mg.Stats())
	}
}

// newCachedManager returns a Manager with an on-disk cache in a temporary
// directory, reading from an empty local store (also returned).
func newCachedManager(t *testing.T) (*Manager, blob.Store) {
	t.Helper()
	store, err := fileblob.OpenDir(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	mg, err := New(Options{Store: store, CacheDir: filepath.Join(t.TempDir(), "cache"), Hostname: "h",
		RefreshInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return mg, store
}
