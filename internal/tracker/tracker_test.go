package tracker

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// memFile is a database file in memory with a version xattr.
type memFile struct {
	data  []byte
	xattr []byte
}

func (f *memFile) ReadAt(p []byte, off int64) error {
	clear(p)
	if off < int64(len(f.data)) {
		copy(p, f.data[off:])
	}
	return nil
}
func (f *memFile) Size() (int64, error)   { return int64(len(f.data)), nil }
func (f *memFile) Xattr() ([]byte, error) { return f.xattr, nil }

// spoolImage rebuilds the file that the spool's manifest describes.
func spoolImage(t *testing.T, d *spool.Dir) []byte {
	t.Helper()
	m, _, err := d.Manifest()
	if err != nil || m == nil {
		t.Fatalf("spool manifest: %v", err)
	}
	out := make([]byte, m.Length)
	for i, h := range m.Chunks {
		var data []byte
		switch {
		case i == 0:
			data = m.Chunk0
		case h == manifest.ZeroChunkHash(manifest.ChunkLen(i, m.Length, m.ChunkSize)):
			data = make([]byte, manifest.ChunkLen(i, m.Length, m.ChunkSize))
		default:
			data, err = d.ReadChunk(h)
			if err != nil {
				t.Fatalf("chunk %d: %v", i, err)
			}
		}
		copy(out[int64(i)*int64(m.ChunkSize):], data)
	}
	return out
}

// TestTracker_IncrementalAndRescan drives Capture with simulated writes:
// incremental commits, growth, shrink, and a write behind its back.
func TestTracker_IncrementalAndRescan(t *testing.T) {
	dir := t.TempDir()
	m := New(Options{SpoolDir: filepath.Join(dir, "spool"), Hostname: "h", IdleRelease: 40 * time.Millisecond})
	m.Start()
	defer m.Close(t.Context())
	dbPath := filepath.Join(dir, "x.db")
	os.WriteFile(dbPath, nil, 0o644)
	h := m.Open(dbPath)
	if h == 0 {
		t.Fatal("Open returned 0")
	}
	db := m.DB(dbPath)
	f := &memFile{data: make([]byte, 100)}
	rng := rand.New(rand.NewPCG(1, 2))
	seq := uint64(1000)
	header := func() []byte { b := make([]byte, HeaderLen); f.ReadAt(b, 0); return b }
	commit := func(mutate func() []uint32) {
		preX, preH := append([]byte(nil), f.xattr...), header()
		dirty := mutate()
		seq++
		f.xattr = binary.BigEndian.AppendUint64(nil, seq)
		binary.BigEndian.PutUint32(f.data[24:], uint32(seq)) // change counter
		dirty = append(dirty, 0)
		m.Capture(h, f, Event{Kind: Commit, Dirty: dirty, PreXattr: preX, PreHeader: preH, PostXattr: f.xattr, Seq: seq})
	}
	write := func(off int, n int) []uint32 {
		if off+n > len(f.data) {
			f.data = append(f.data, make([]byte, off+n-len(f.data))...)
		}
		for i := range n {
			f.data[off+i] = byte(rng.IntN(256))
		}
		var out []uint32
		for c := off >> 16; c <= (off+n-1)>>16; c++ {
			out = append(out, uint32(c))
		}
		return out
	}
	check := func(what string) {
		t.Helper()
		if err := db.build(); err != nil {
			t.Fatalf("%s: build: %v", what, err)
		}
		if got := spoolImage(t, db.spool); !bytes.Equal(got, f.data) {
			t.Fatalf("%s: spool image (%d bytes) differs from file (%d bytes)", what, len(got), len(f.data))
		}
	}
	// First capture rescans (nothing known yet).
	m.Capture(h, f, Event{Kind: Check})
	check("initial")
	for i := range 30 {
		commit(func() []uint32 { return write(rng.IntN(len(f.data)+200000), 1+rng.IntN(5000)) })
		if i%5 == 0 {
			check("incremental")
		}
	}
	check("after commits")
	// Idle: the base version is released, then reloaded from the spool.
	time.Sleep(150 * time.Millisecond)
	db.buildMu.Lock()
	released := db.base == nil
	db.buildMu.Unlock()
	if !released {
		t.Fatal("idle database kept its base version in memory")
	}
	commit(func() []uint32 { return write(rng.IntN(len(f.data)), 100) })
	check("after idle release")
	// Shrink (the VFS reports the truncated range as dirty).
	commit(func() []uint32 { f.data = f.data[:len(f.data)/2]; return []uint32{uint32((len(f.data) - 1) >> 16)} })
	check("shrink")
	// A bypass write: header changes without the tracker seeing it.
	write(70000, 10)
	binary.BigEndian.PutUint32(f.data[24:], 999999)
	commit(func() []uint32 { return write(10, 5) })
	check("after bypass write")
	// A rollback forgets the identity; the next commit rescans or adopts.
	m.Capture(h, f, Event{Kind: Rollback})
	commit(func() []uint32 { return write(200, 5) })
	check("after rollback")
	m.Release(h)
}
