package replica

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// A reader that outruns its readahead (the readahead slots all taken when
// the window starts) fetches the chunks itself; the readahead, once it
// gets a slot, must not fetch them again. With a working disk cache the
// chunk the reader fetched is pending or on disk, so the readahead finds
// it; without one (an unusable cache_dir, or none) it was in no Go buffer
// and was fetched twice: TestPackCacheUnusableDirectory saw 8 to 13
// fetches of 7 chunks about once in 20 runs. Here the ordering is forced.
func TestReadaheadSkipsChunksTheReaderPassed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache func(t *testing.T) string
	}{
		{"packs is a file", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "cache")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "packs"), []byte("not a directory"), 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"no disk cache", func(t *testing.T) string { return "" }},
		{"working disk cache", func(t *testing.T) string { return filepath.Join(t.TempDir(), "cache") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const chunks = 8
			m, data := storedManifest(t, chunks)
			mg, err := New(Options{Store: m.store, CacheDir: tc.cache(t), Hostname: "h", RefreshInterval: time.Hour,
				Readahead: 1, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			src := &Source{mgr: mg, target: Target{Version: m.Seq, What: "db"}, held: map[uint64]*held{}, lastMiss: -2, cur: m.Manifest}

			// The only readahead slot is taken: the window that the
			// miss on chunk 1 starts (2..7) waits for it.
			mg.sem <- struct{}{}
			for i := range chunks {
				got, err := src.ReadChunk(m.Seq, i)
				if err != nil || !bytes.Equal(got, data[i]) {
					t.Fatalf("chunk %d: %v (right data: %v)", i, err, bytes.Equal(got, data[i]))
				}
			}
			<-mg.sem
			mg.Wait()
			if s := mg.Stats(); s.ChunkFetches != chunks-1 || s.Readaheads != 0 {
				t.Fatalf("%d chunk fetches (%d by readahead), want %d (none by readahead: the reader passed them all)",
					s.ChunkFetches, s.Readaheads, chunks-1)
			}
		})
	}
}

// A window whose scan ended (a miss that was not forward) before the
// readahead got a slot fetches nothing: the reader moved elsewhere, and
// the chunks it had read are in no Go buffer without a disk cache.
func TestReadaheadOfAnEndedScanFetchesNothing(t *testing.T) {
	const chunks = 12
	m, data := storedManifest(t, chunks)
	mg, err := New(Options{Store: m.store, Hostname: "h", RefreshInterval: time.Hour,
		Readahead: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{mgr: mg, target: Target{Version: m.Seq, What: "db"}, held: map[uint64]*held{}, lastMiss: -2, cur: m.Manifest}
	mg.sem <- struct{}{}
	// Misses 1, 2 (window 3..10 waits), 3, then back to 1: a new scan.
	for _, i := range []int{1, 2, 3, 1} {
		if got, err := src.ReadChunk(m.Seq, i); err != nil || !bytes.Equal(got, data[i]) {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	<-mg.sem
	mg.Wait()
	if s := mg.Stats(); s.ChunkFetches != 4 || s.Readaheads != 0 {
		t.Fatalf("%d chunk fetches (%d by readahead), want the reader's 4 and none by readahead", s.ChunkFetches, s.Readaheads)
	}
}

// The readahead that gets its slot before the reader reaches the window
// still fetches it, each chunk once (the reader takes them from the ahead
// buffer).
func TestReadaheadAheadOfTheReaderFetchesEachChunkOnce(t *testing.T) {
	const chunks = 8
	m, data := storedManifest(t, chunks)
	mg, err := New(Options{Store: m.store, Hostname: "h", RefreshInterval: time.Hour,
		Readahead: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{mgr: mg, target: Target{Version: m.Seq, What: "db"}, held: map[uint64]*held{}, lastMiss: -2, cur: m.Manifest}
	for i := range 2 {
		if _, err := src.ReadChunk(m.Seq, i); err != nil {
			t.Fatal(err)
		}
	}
	mg.Wait() // the window 2..7 is fetched
	for i := 2; i < chunks; i++ {
		if got, err := src.ReadChunk(m.Seq, i); err != nil || !bytes.Equal(got, data[i]) {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	mg.Wait()
	if s := mg.Stats(); s.ChunkFetches != chunks-1 || s.Readaheads != chunks-2 {
		t.Fatalf("%d chunk fetches (%d by readahead), want %d (%d by readahead)", s.ChunkFetches, s.Readaheads, chunks-1, chunks-2)
	}
}

// storedTestManifest is a manifest whose chunks (but chunk 0, inline) are
// in a local store.
type storedTestManifest struct {
	*manifest.Manifest
	store *fileblob.Store
}

// storedManifest stores n random chunks of 64 KiB and returns their
// manifest and data.
func storedManifest(t *testing.T, n int) (storedTestManifest, [][]byte) {
	t.Helper()
	store, err := fileblob.OpenDir(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 10
	r := rand.New(rand.NewPCG(uint64(n), 7))
	m := &manifest.Manifest{Name: "db", Seq: 1, ChunkSize: size, Length: int64(n) * size, PageSize: 4096}
	var data [][]byte
	for i := range n {
		c := make([]byte, size)
		for j := range c {
			c[j] = byte(r.Uint32())
		}
		data = append(data, c)
		h := manifest.HashOf(c)
		m.Chunks = append(m.Chunks, h)
		if i == 0 {
			m.Chunk0 = c
			m.HeaderHash = manifest.HashOf(c[:100])
			continue
		}
		if err := store.Put(context.Background(), names.ChunkKey(h.String()), manifest.EncodeChunk(c)); err != nil {
			t.Fatal(err)
		}
	}
	return storedTestManifest{m, store}, data
}
