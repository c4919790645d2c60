package restore_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

const inlineName = "inline:/db"

// inlineVersion stores a 5-chunk database as version 10 (history, chunks
// stored) and version 11 as latest only, a delta on 10 whose changed
// chunks 2 and 4 are carried inline (no chunk object); wrong, when set,
// carries other bytes than chunk 4's under its hash. It returns version
// 11's bytes.
func inlineVersion(t *testing.T, wrong bool) (*fileblob.Store, []byte) {
	t.Helper()
	ctx := context.Background()
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	const cs = 64 << 10
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 5*cs-300)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	build := func(seq uint64, data []byte) *manifest.Manifest {
		m := &manifest.Manifest{Name: inlineName, Seq: seq, CommitTime: time.Unix(int64(seq), 0), PageSize: 4096,
			ChunkSize: cs, Length: int64(len(data)), VersionID: []byte{byte(seq)}}
		for i := 0; i < manifest.ChunkCount(m.Length, cs); i++ {
			c := data[i*cs : i*cs+manifest.ChunkLen(i, m.Length, cs)]
			m.Chunks = append(m.Chunks, manifest.HashOf(c))
			if i == 0 {
				m.Chunk0, m.HeaderHash = c, manifest.HashOf(c[:100])
			}
		}
		return m
	}
	key := names.Key(inlineName)
	base := build(10, data)
	for i := 1; i < len(base.Chunks); i++ {
		c := data[i*cs : i*cs+manifest.ChunkLen(i, base.Length, cs)]
		if err := s.Put(ctx, names.ChunkKey(base.Chunks[i].String()), manifest.EncodeChunk(c)); err != nil {
			t.Fatal(err)
		}
	}
	benc, _ := base.Encode()
	if err := s.Put(ctx, names.ManifestKey(key, 10), benc); err != nil {
		t.Fatal(err)
	}
	v11 := bytes.Clone(data)
	v11[2*cs+5] ^= 1
	v11[len(v11)-1] ^= 1
	m := build(11, v11)
	m.Inline = map[manifest.Hash][]byte{m.Chunks[2]: v11[2*cs : 3*cs], m.Chunks[4]: v11[4*cs:]}
	if wrong {
		m.Inline[m.Chunks[4]] = data[4*cs:]
	}
	enc, err := manifest.EncodeDelta(m, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, names.LatestKey(key), enc); err != nil {
		t.Fatal(err)
	}
	return s, v11
}

// TestInlineChunksRestore: a latest-only version whose changed chunks are
// inline restores byte for byte with nothing but latest and its base
// (two GETs), by Latest, Version and At.
func TestInlineChunksRestore(t *testing.T) {
	ctx := context.Background()
	s, want := inlineVersion(t, false)
	key := names.Key(inlineName)
	for name, find := range map[string]func() (*manifest.Manifest, error){
		"latest":  func() (*manifest.Manifest, error) { return restore.Latest(ctx, s, key) },
		"version": func() (*manifest.Manifest, error) { return restore.Version(ctx, s, key, 11) },
		"at":      func() (*manifest.Manifest, error) { return restore.At(ctx, s, key, time.Now()) },
	} {
		m, err := find()
		if err != nil || m.Seq != 11 || len(m.Inline) != 2 {
			t.Fatalf("%s: %v (%v)", name, m, err)
		}
		out := filepath.Join(t.TempDir(), "out.db")
		if err := restore.ToFile(ctx, s, m, out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
			t.Fatalf("%s: restored other bytes", name)
		}
		for i := range m.Chunks {
			c, err := restore.Chunk(ctx, s, m, i)
			if err != nil || !bytes.Equal(c, want[i<<16:i<<16+len(c)]) {
				t.Fatalf("%s: chunk %d: %v", name, i, err)
			}
		}
	}
}

// TestInlineChunkCorrupt: an inline chunk whose bytes do not match the
// hash the manifest gives (a writer's bug) makes the manifest corrupt,
// with the chunk's index and hash in the error; a lookup of that version
// by number (latest only: not in history) says it is not found and why.
func TestInlineChunkCorrupt(t *testing.T) {
	ctx := context.Background()
	s, _ := inlineVersion(t, true)
	key := names.Key(inlineName)
	for name, find := range map[string]func() (*manifest.Manifest, error){
		"latest":  func() (*manifest.Manifest, error) { return restore.Latest(ctx, s, key) },
		"version": func() (*manifest.Manifest, error) { return restore.Version(ctx, s, key, 11) },
	} {
		m, err := find()
		if m != nil || err == nil || (name == "latest" && !errors.Is(err, manifest.ErrCorrupt)) {
			t.Fatalf("%s: %v, %v; want a corrupt manifest", name, m, err)
		}
		if !strings.Contains(err.Error(), "inline chunk at index 4") || !strings.Contains(err.Error(), "content hash") {
			t.Fatalf("%s: %v; want the index and the hash mismatch", name, err)
		}
	}
}
