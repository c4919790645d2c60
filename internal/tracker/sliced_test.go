package tracker

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"
)

// holdFile is a memFile whose SHARED holds are modelled: the capture call
// is one hold (reads through the Source), and each Lock..Unlock of its
// SliceReader another. It records the bytes read in each hold.
type holdFile struct {
	mu     sync.Mutex
	f      *memFile
	mtime  int64
	holds  []int64 // bytes read per hold; holds[0] is the capture's
	locked bool
	bad    string // a read outside any hold
	// onLock, when set, runs before the nth Lock (from 1) is granted,
	// with mu held: a writer committing between two slices.
	onLock func(n int)
	nLock  int
	busy   bool // a writer holds the file: Lock fails
}

func newHoldFile(f *memFile) *holdFile {
	return &holdFile{f: f, mtime: 1_700_000_000_123_456_789, holds: []int64{0}}
}

func (h *holdFile) ReadAt(p []byte, off int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holds[0] += int64(len(p))
	return h.f.ReadAt(p, off)
}
func (h *holdFile) Size() (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.f.Size()
}
func (h *holdFile) Xattr() ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.f.Xattr()
}
func (h *holdFile) OpenSlices() (SliceReader, error) { return &holdReader{h}, nil }

type holdReader struct{ h *holdFile }

func (r *holdReader) Lock() (bool, error) {
	h := r.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nLock++
	if h.onLock != nil {
		h.onLock(h.nLock)
	}
	if h.busy {
		return false, nil
	}
	h.locked = true
	h.holds = append(h.holds, 0)
	return true, nil
}
func (r *holdReader) Unlock() error {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.locked = false
	return nil
}
func (r *holdReader) ReadAt(p []byte, off int64) error {
	h := r.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.locked {
		h.bad = "a slice was read without SHARED"
	}
	h.holds[len(h.holds)-1] += int64(len(p))
	return h.f.ReadAt(p, off)
}
func (r *holdReader) Stamp() (Stamp, error) {
	h := r.h
	h.mu.Lock()
	defer h.mu.Unlock()
	hdr := make([]byte, HeaderLen)
	h.f.ReadAt(hdr, 0)
	return Stamp{Size: int64(len(h.f.data)), MtimeSec: h.mtime / 1e9, MtimeNsec: h.mtime % 1e9,
		CtimeSec: h.mtime / 1e9, CtimeNsec: h.mtime % 1e9, Xattr: h.f.xattr, Header: hdr}, nil
}
func (r *holdReader) Close() error { return nil }

// firstCheck runs a Check capture (a read transaction), which must not
// fail (it may ask for another check while its sliced copy runs).
func firstCheck(t *testing.T, s *simDB, src Source) {
	t.Helper()
	s.m.Capture(s.h, src, Event{Kind: Check})
	s.db.mu.Lock()
	err := s.db.lastErr
	s.db.mu.Unlock()
	if err != nil {
		t.Fatalf("check: %v", err)
	}
}

// bigSim is a simDB whose file is mb MiB of distinct chunks.
func bigSim(t *testing.T, mb int) *simDB {
	s := newSimDB(t, Options{})
	s.f.data = make([]byte, mb<<20+777)
	for i := 0; i < len(s.f.data); i += 512 {
		binary.BigEndian.PutUint64(s.f.data[i:], uint64(i))
	}
	s.f.xattr = binary.BigEndian.AppendUint64(nil, 42)
	return s
}

// TestRegression_FirstCaptureSharedHoldBounded: the first capture of a
// 64 MiB file (a read transaction: `verneuilctl sync`, a new process, a
// bypassing writer detected) must not read the whole file under one SHARED
// hold: no hold may read more than one 1 MiB slice (plus the header), and
// the replica must be byte-identical to the file.
func TestRegression_FirstCaptureSharedHoldBounded(t *testing.T) {
	s := bigSim(t, 64)
	src := newHoldFile(s.f)
	firstCheck(t, s, src)
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.bad != "" {
		t.Fatal(src.bad)
	}
	var longest int64
	for _, n := range src.holds {
		longest = max(longest, n)
	}
	if longest > sliceBytes+HeaderLen {
		t.Fatalf("one SHARED hold read %d bytes of a %d-byte file (%d holds); want at most one slice (%d)",
			longest, len(s.f.data), len(src.holds), sliceBytes)
	}
	s.sameAsFile("after the sliced rescan")
	s.commit(3, 700) // squashes into the rescanned version
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("after the next commit")
}

// TestRegression_SlicedRescanTornByCommit: a writer that bypasses the VFS
// commits between two slices of the first capture's copy. The copy must
// notice and publish nothing (a torn mix of two states); Flush reports
// ErrDeferred, and the next read transaction rescans the new state.
func TestRegression_SlicedRescanTornByCommit(t *testing.T) {
	s := bigSim(t, 16)
	src := newHoldFile(s.f)
	src.onLock = func(n int) {
		if n != 8 {
			return
		}
		// A bypassing commit: chunks before and after the copy's
		// position, the change counter, and the mtime.
		for _, off := range []int{64 << 10, 15 << 20} {
			s.f.data[off+200] ^= 0xff
		}
		binary.BigEndian.PutUint32(s.f.data[24:], 777)
		src.mtime += 1000
	}
	firstCheck(t, s, src)
	err := s.db.Flush(t.Context())
	if !errors.Is(err, ErrDeferred) {
		t.Fatalf("flush after a torn sliced copy: %v, want ErrDeferred", err)
	}
	if man, _, err := s.db.spool.Manifest(); err != nil || man != nil {
		t.Fatalf("a torn copy was published (manifest %v, err %v)", man != nil, err)
	}
	src.onLock = nil
	firstCheck(t, s, src)
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("after the rescan that followed")
}

// TestSlicedRescan_CommitSupersedes: a commit captured while a sliced copy
// waits for the writer's lock supersedes the copy (no deadlock: the
// commit's capture holds the lock the copy waits for) and rescans under
// its own lock; the replica is the file.
func TestSlicedRescan_CommitSupersedes(t *testing.T) {
	s := bigSim(t, 8)
	src := newHoldFile(s.f)
	waiting := make(chan struct{})
	src.onLock = func(n int) {
		if n == 3 {
			src.busy = true // a writer took the file
			close(waiting)
		}
	}
	firstCheck(t, s, src)
	<-waiting
	s.commit(2, 100) // s.f's data is only read by the copy under a lock it cannot take
	src.mu.Lock()
	src.busy = false
	src.mu.Unlock()
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("after the commit that superseded the sliced copy")
}
