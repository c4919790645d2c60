package spool

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// TestSpool_PinKeepsChunksOfTheUpload: while a manifest is pinned (being
// uploaded), publishing newer ones keeps its staged chunks; unpin collects
// those only the pin kept. A damaged pin keeps nothing extra.
func TestSpool_PinKeepsChunksOfTheUpload(t *testing.T) {
	d, err := Open(t.TempDir(), "k", Info{Path: "/x", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(b byte) []byte {
		c := make([]byte, 1<<16)
		c[0] = b
		if err := d.StageChunk(manifest.HashOf(c), c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	publish := func(seq uint64, chunks ...[]byte) {
		t.Helper()
		m, enc := manifestWith(t, seq, chunks...)
		if ok, err := d.Publish(m, enc); !ok || err != nil {
			t.Fatalf("publish v%d: %v %v", seq, ok, err)
		}
	}
	if m, _, unpin, err := d.Pin(); err != nil || m != nil {
		t.Fatalf("pin with nothing staged: %v %v", m, err)
	} else {
		unpin()
	}

	a := chunk(1)
	publish(1, a)
	m, _, unpin, err := d.Pin()
	if err != nil || m == nil || m.Seq != 1 {
		t.Fatalf("pin: %v %v", m, err)
	}
	publish(2, chunk(2))
	publish(3, chunk(3))
	if !d.HasChunk(manifest.HashOf(a)) {
		t.Fatal("a chunk of the pinned manifest was collected")
	}
	c3 := manifest.HashOf(chunk(3)) // staged again: the newest references it
	unpin()
	if _, err := os.Stat(filepath.Join(d.Path, PinFile)); !os.IsNotExist(err) {
		t.Fatalf("pin file after unpin: %v", err)
	}
	// An upload that failed leaves nothing behind: the chunks only the
	// pin kept go with it; those of the newest manifest stay.
	if d.HasChunk(manifest.HashOf(a)) {
		t.Fatal("a chunk only the pin kept survived unpin")
	}
	if !d.HasChunk(c3) {
		t.Fatal("unpin collected a chunk of the staged manifest")
	}

	// A damaged pin (a torn write cannot happen, but a disk can) is
	// ignored: GC goes on as without one.
	b := chunk(5)
	publish(5, b)
	if err := os.WriteFile(filepath.Join(d.Path, PinFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	publish(6, chunk(6))
	if d.HasChunk(manifest.HashOf(b)) {
		t.Fatal("a damaged pin kept chunks")
	}
}
