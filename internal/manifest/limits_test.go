package manifest

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// TestRegression_ChunkSizeRange: manifests whose chunk size is outside the
// documented range (a power of two from 64 KiB to 16 MiB) are rejected, so
// that readers never size buffers from a hostile value.
func TestRegression_ChunkSizeRange(t *testing.T) {
	for _, cs := range []uint32{1 << 12, 1 << 15, 1 << 25, 1 << 30, 1 << 31} {
		m := &Manifest{Name: "h:/db", Seq: 1, CommitTime: time.Unix(1, 0), ChunkSize: cs, Length: 10,
			Chunk0: make([]byte, 10)}
		m.Chunks = []Hash{HashOf(m.Chunk0)}
		if err := m.Validate(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("chunk size %d: Validate = %v, want a corrupt-manifest error", cs, err)
		}
	}
	for _, cs := range []uint32{64 << 10, 1 << 20, 16 << 20} {
		m := &Manifest{Name: "h:/db", Seq: 1, CommitTime: time.Unix(1, 0), ChunkSize: cs, Length: 10,
			Chunk0: make([]byte, 10)}
		m.Chunks = []Hash{HashOf(m.Chunk0)}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("chunk size %d: %v", cs, err)
		}
		if _, err := Decode(enc); err != nil {
			t.Fatalf("chunk size %d: %v", cs, err)
		}
	}
}

// TestRegression_ChunkDecodeBounded: a small chunk object that inflates far
// beyond the chunk size is rejected without allocating what it inflates to.
func TestRegression_ChunkDecodeBounded(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	bomb := append([]byte{chunkZstd}, enc.EncodeAll(make([]byte, 64<<20), nil)...)
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = DecodeChunk(bomb, HashOf(nil), 64<<10)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeChunk of a 64 MiB bomb: %v, want a corrupt-chunk error", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("decoding a %d-byte object for a 64 KiB chunk allocated %d MiB", len(bomb), got>>20)
	}
	// A chunk of exactly the limit still decodes.
	data := bytes.Repeat([]byte("abcd"), 16<<10)
	got, err := DecodeChunk(EncodeChunk(data), HashOf(data), len(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("DecodeChunk of a full chunk: %v", err)
	}
}
