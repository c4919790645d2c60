package tracker

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
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
func (h *holdFile) WriteLocked() bool                { return false }

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
// notice (its stamp check) and never publish a torn mix of two states: it
// restarts from the new state, and the replica is the file.
func TestRegression_SlicedRescanTornByCommit(t *testing.T) {
	s := bigSim(t, 16)
	src := newHoldFile(s.f)
	src.onLock = func(n int) {
		if n == 8 {
			bypassingWrite(s, src)
		}
	}
	firstCheck(t, s, src)
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatalf("flush after a sliced copy restarted: %v", err)
	}
	s.sameAsFile("after the sliced copy restarted")
}

// bypassingWrite is a commit that bypasses the VFS (no capture, no new
// version xattr): chunks before and after a copy's position, the change
// counter, and the mtime. src.mu is held.
func bypassingWrite(s *simDB, src *holdFile) {
	for _, off := range []int{64 << 10, len(s.f.data) - 1000} {
		s.f.data[off] ^= 0xff
	}
	binary.BigEndian.PutUint32(s.f.data[24:], binary.BigEndian.Uint32(s.f.data[24:])+1)
	src.mtime += 1000
}

// TestSlicedRescan_RestartsBounded: a bypassing writer that changes the
// file between every two slices makes the copy restart a bounded number of
// times, then give up: nothing is published, Flush reports ErrDeferred,
// and the next read transaction rescans the file.
func TestSlicedRescan_RestartsBounded(t *testing.T) {
	s := bigSim(t, 8)
	src := newHoldFile(s.f)
	src.onLock = func(int) { bypassingWrite(s, src) }
	firstCheck(t, s, src)
	err := s.db.Flush(t.Context())
	if !errors.Is(err, ErrDeferred) {
		t.Fatalf("flush after a copy that the file kept changing under: %v, want ErrDeferred", err)
	}
	if man, _, err := s.db.spool.Manifest(); err != nil || man != nil {
		t.Fatalf("a torn copy was published (manifest %v, err %v)", man != nil, err)
	}
	src.mu.Lock()
	n := src.nLock
	src.onLock = nil
	src.mu.Unlock()
	if n > (maxSlicedRestarts+1)*8*2 {
		t.Fatalf("the copy took %d slice locks on an 8 MiB file; want it bounded", n)
	}
	firstCheck(t, s, src)
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("after the rescan that followed")
}

// TestSlicedRescan_CommitWhileCopyWaits: a commit captured while a sliced
// copy waits for the writer's lock does not wait for the copy (no
// deadlock: the commit's capture holds the lock the copy waits for); its
// chunks are overlaid on the copy, and the replica is the file.
func TestSlicedRescan_CommitWhileCopyWaits(t *testing.T) {
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
	s.commitWith(src, 2, 100)
	src.mu.Lock()
	src.busy = false
	src.mu.Unlock()
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("after the commit during the sliced copy")
}

// TestRegression_CommitRescanSliced: the first commit of a large file
// whose state is unknown (no usable spool) does not copy the file under
// its lock: no SHARED hold reads more than one slice, and the replica is
// the file.
func TestRegression_CommitRescanSliced(t *testing.T) {
	s := bigSim(t, 32)
	src := newHoldFile(s.f)
	s.commitWith(src, 3, 200)
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	longest := slices.Max(src.holds)
	src.mu.Unlock()
	if longest > sliceBytes+HeaderLen {
		t.Fatalf("one SHARED hold read %d bytes of a %d-byte file at the first commit; want at most one slice (%d)",
			longest, len(s.f.data), sliceBytes)
	}
	s.sameAsFile("after the commit-triggered sliced rescan")
}

// TestRegression_CommitStormDuringSlicedCopy: commits land between the
// slices of a sliced copy started by a commit (chunk 0, chunks before and
// after the copy's position, growth past the old end), each captured a
// little after its write, as the VFS does once the writer holds SHARED
// again. The copy keeps going (the commits are overlaid on it), and the
// replica is the file.
func TestRegression_CommitStormDuringSlicedCopy(t *testing.T) {
	s := bigSim(t, 24)
	src := newHoldFile(s.f)
	events := make(chan Event, 1)
	var idle atomic.Bool // the last write was captured
	idle.Store(true)
	sent := 0
	rng := rand.New(rand.NewPCG(3, 4))
	src.onLock = func(n int) {
		if n%2 != 0 || !idle.Load() {
			return
		}
		idle.Store(false)
		sent++
		chunks := []int{rng.IntN(len(s.f.data) >> 16), rng.IntN(len(s.f.data)>>16 + 3)}
		src.mtime += 1000
		events <- s.write(chunks...)
	}
	captured := make(chan struct{})
	go func() {
		defer close(captured)
		for ev := range events {
			s.m.Capture(s.h, src, ev)
			idle.Store(true)
		}
	}()
	s.commitWith(src, 5) // unknown state: starts the sliced copy
	s.db.waitSliced(false)
	src.mu.Lock()
	src.onLock = nil
	n := sent
	src.mu.Unlock()
	close(events)
	<-captured
	if n < 5 {
		t.Fatalf("%d commits landed during the copy; the test wants a storm", n)
	}
	s.db.mu.Lock()
	err := s.db.slicedErr
	s.db.mu.Unlock()
	if err != nil {
		t.Fatalf("the commits made the sliced copy give up: %v", err)
	}
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d commits during the sliced copy", n)
	s.sameAsFile("after a commit storm during the sliced copy")
}
