package tracker

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// countingFile is a memFile that counts the bytes read through ReadAt.
type countingFile struct {
	memFile
	read int64
}

func (f *countingFile) ReadAt(p []byte, off int64) error {
	f.read += int64(len(p))
	return f.memFile.ReadAt(p, off)
}

// TestTracker_ExtentsRefreshPendingCopies drives commits that report the
// byte ranges they wrote (Event.Extents, as the VFS does): a chunk whose
// copy from an earlier commit is still pending is refreshed by reading
// only the written range, a chunk without a pending copy, or at the old or
// new end of a resized file, is read whole, and the built version is the
// file, byte for byte, whatever mix of the two a build squashes.
func TestTracker_ExtentsRefreshPendingCopies(t *testing.T) {
	const cs = 1 << 16
	dir := t.TempDir()
	m := New(Options{SpoolDir: filepath.Join(dir, "spool"), Hostname: "h", BuildDelay: time.Hour})
	m.Start()
	defer m.Close(t.Context())
	dbPath := filepath.Join(dir, "x.db")
	if err := os.WriteFile(dbPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := m.Open(dbPath)
	db := m.DB(dbPath)
	f := &countingFile{memFile: memFile{data: make([]byte, 4*cs)}}
	rng := rand.New(rand.NewPCG(3, 4))
	seq := uint64(5000)
	header := func() []byte { b := make([]byte, HeaderLen); f.memFile.ReadAt(b, 0); return b }

	type write struct{ off, n int }
	// commit applies the writes (growing the file as needed), reports each
	// chunk's written range, and returns the bytes the capture read.
	commit := func(writes ...write) int64 {
		t.Helper()
		preX, preH := append([]byte(nil), f.xattr...), header()
		ext := map[uint32][2]uint32{}
		var dirty []uint32
		mark := func(off, n int) {
			for c := off / cs; c <= (off+n-1)/cs; c++ {
				lo, hi := max(off, c*cs)-c*cs, min(off+n, (c+1)*cs)-c*cs
				e, ok := ext[uint32(c)]
				if !ok {
					dirty = append(dirty, uint32(c))
					e = [2]uint32{uint32(lo), uint32(hi)}
				}
				e[0], e[1] = min(e[0], uint32(lo)), max(e[1], uint32(hi))
				ext[uint32(c)] = e
			}
		}
		seq++
		binary.BigEndian.PutUint32(f.data[24:], uint32(seq)) // change counter
		mark(24, 4)
		for _, w := range writes {
			if w.off+w.n > len(f.data) {
				f.data = append(f.data, make([]byte, w.off+w.n-len(f.data))...)
			}
			for i := range w.n {
				f.data[w.off+i] = byte(rng.IntN(256))
			}
			mark(w.off, w.n)
		}
		var extents []uint32
		for _, c := range dirty {
			extents = append(extents, ext[c][0], ext[c][1])
		}
		f.xattr = binary.BigEndian.AppendUint64(nil, seq)
		f.read = 0
		m.Capture(h, f, Event{Kind: Commit, Dirty: dirty, Extents: extents, PreXattr: preX, PreHeader: preH, PostXattr: f.xattr, Seq: seq})
		if err := db.lastErrForTest(); err != nil {
			t.Fatalf("capture: %v", err)
		}
		return f.read
	}
	// shrinkTo truncates the file to n bytes, reported like xTruncate.
	shrinkTo := func(n int) {
		preX, preH := append([]byte(nil), f.xattr...), header()
		f.data = f.data[:n]
		seq++
		binary.BigEndian.PutUint32(f.data[24:], uint32(seq))
		f.xattr = binary.BigEndian.AppendUint64(nil, seq)
		m.Capture(h, f, Event{Kind: Commit, Dirty: []uint32{0, uint32((n - 1) / cs)}, Extents: []uint32{24, 28, 0, cs},
			PreXattr: preX, PreHeader: preH, PostXattr: f.xattr, Seq: seq})
	}
	check := func(what string) {
		t.Helper()
		if err := db.build(); err != nil {
			t.Fatalf("%s: build: %v", what, err)
		}
		if got := spoolImage(t, db.spool); !bytes.Equal(got, f.data) {
			t.Fatalf("%s: spool image (%d bytes) differs from the file (%d bytes)", what, len(got), len(f.data))
		}
	}
	m.Capture(h, f, Event{Kind: Check}) // first capture: a rescan
	check("initial")

	// No pending copy after a build: chunks 0 and 2 are read whole.
	if got := commit(write{2*cs + 100, 4096}); got != 2*cs {
		t.Fatalf("first commit after a build read %d bytes, want %d (two whole chunks)", got, 2*cs)
	}
	// Pending copies of chunks 0 and 2: only the written ranges.
	if got := commit(write{2*cs + 8192, 4096}); got != 4+4096 {
		t.Fatalf("squashed commit read %d bytes, want %d (the written ranges)", got, 4+4096)
	}
	// A write spanning chunks 2 and 3 (3 has no pending copy).
	if got := commit(write{3*cs - 1000, 3000}); got != 4+1000+cs {
		t.Fatalf("spanning commit read %d bytes, want %d", got, 4+1000+cs)
	}
	check("squashed")

	// Shrink to a chunk boundary, then grow back with a small write: the
	// pending copy of chunk 3 (from before the shrink) has the right length
	// but stale bytes around the write, so the chunk must be read whole.
	commit(write{3*cs + 10, 5000}) // chunk 3 has a pending copy
	shrinkTo(3 * cs)
	if got := commit(write{4*cs - 10, 10}); got != 4+cs {
		t.Fatalf("regrown chunk: read %d bytes, want %d (chunk 3 whole)", got, 4+cs)
	}
	check("shrink and regrow")

	// Random commits, with growth and shrinks, several per build.
	for i := range 200 {
		switch rng.IntN(10) {
		case 0: // growth by a page: the new last chunk is read whole
			commit(write{len(f.data), 4096})
		case 1: // shrink
			if len(f.data) > 2*cs {
				shrinkTo(len(f.data) - 4096 - rng.IntN(cs))
			}
		default:
			var ws []write
			for range 1 + rng.IntN(4) {
				off := rng.IntN(len(f.data) - 1)
				ws = append(ws, write{off, 1 + rng.IntN(min(8192, len(f.data)-off))})
			}
			commit(ws...)
		}
		if i%17 == 0 {
			check("random")
		}
	}
	check("after random commits")
	m.Release(h)
}

// lastErrForTest returns the error of the last capture, if any.
func (db *DB) lastErrForTest() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.lastErr
}
