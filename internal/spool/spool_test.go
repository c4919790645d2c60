package spool

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

func manifestWith(t *testing.T, seq uint64, chunks ...[]byte) (*manifest.Manifest, []byte) {
	t.Helper()
	const cs = 1 << 16
	m := &manifest.Manifest{Name: "n", Seq: seq, ChunkSize: cs, Chunk0: make([]byte, cs)}
	m.Chunks = append(m.Chunks, manifest.HashOf(m.Chunk0))
	for _, c := range chunks {
		m.Chunks = append(m.Chunks, manifest.HashOf(c))
	}
	m.Length = int64(cs * len(m.Chunks))
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return m, enc
}

func TestSpool_PublishOrderAndGC(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root, "k", Info{Path: "/x", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := make([]byte, 1<<16), make([]byte, 1<<16)
	a[0], b[0] = 1, 2
	for _, c := range [][]byte{a, b} {
		if err := d.StageChunk(manifest.HashOf(c), c); err != nil {
			t.Fatal(err)
		}
	}
	m2, enc2 := manifestWith(t, 2, a)
	if ok, err := d.Publish(m2, enc2); !ok || err != nil {
		t.Fatalf("publish v2: %v %v", ok, err)
	}
	if d.HasChunk(manifest.HashOf(b)) {
		t.Fatal("unreferenced chunk survived GC")
	}
	if !d.HasChunk(manifest.HashOf(a)) {
		t.Fatal("referenced chunk was collected")
	}
	m1, enc1 := manifestWith(t, 1)
	if ok, _ := d.Publish(m1, enc1); ok {
		t.Fatal("an older manifest replaced a newer one")
	}
	if got, _, _ := d.Manifest(); got.Seq != 2 {
		t.Fatalf("staged version %d, want 2", got.Seq)
	}
	// A damaged staged chunk is detected and removed.
	os.WriteFile(d.ChunkPath(manifest.HashOf(a).String()), []byte("garbage"), 0o644)
	if _, err := d.ReadChunk(manifest.HashOf(a)); err == nil {
		t.Fatal("damaged chunk accepted")
	}
	if d.HasChunk(manifest.HashOf(a)) {
		t.Fatal("damaged chunk not removed")
	}
	// A damaged staged manifest is reported, not trusted.
	os.WriteFile(filepath.Join(d.Path, "manifest"), []byte("garbage"), 0o644)
	if _, _, err := d.Manifest(); err == nil {
		t.Fatal("damaged manifest accepted")
	}
}

func TestSpool_StaleTempsRemoved(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root, "k", Info{})
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(d.Path, "tmp", "manifest.123")
	os.WriteFile(old, []byte("x"), 0o644)
	os.Chtimes(old, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
	fresh := filepath.Join(d.Path, "tmp", "manifest.456")
	os.WriteFile(fresh, []byte("x"), 0o644)
	if _, err := Open(root, "k", Info{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err == nil {
		t.Fatal("stale temp file survived")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("fresh temp file removed")
	}
}

// FuzzSpoolFiles feeds arbitrary bytes as the spool's manifest, upload
// record and a staged chunk: reads must fail cleanly, never panic or
// accept damage.
func FuzzSpoolFiles(f *testing.F) {
	_, enc := manifestWith(&testing.T{}, 7)
	f.Add(enc, []byte("chunk"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, man, chunk []byte) {
		d, err := Open(t.TempDir(), "k", Info{})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"manifest", "uploaded"} {
			os.WriteFile(filepath.Join(d.Path, name), man, 0o644)
		}
		if m, _, err := d.Manifest(); err == nil && m == nil {
			t.Fatal("no manifest and no error")
		}
		d.Uploaded()
		h := manifest.HashOf([]byte("the real content"))
		os.WriteFile(d.ChunkPath(h.String()), chunk, 0o644)
		if data, err := d.ReadChunk(h); err == nil && string(data) != "the real content" {
			t.Fatal("accepted a chunk that does not match its name")
		}
	})
}
