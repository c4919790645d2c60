package tracker

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

// heapCommit is the VFS's call at COMMIT_PHASETWO of a transaction with a
// heap-memory wal-index, in session s.
func (f *walFixture) heapCommit(t *testing.T, wal []byte, s uint64) error {
	t.Helper()
	if wal != nil {
		if err := os.WriteFile(f.walPath, wal, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.m.Capture(f.h, f.file, Event{Kind: WALHeapCommit, WALPath: f.walPath, WALSession: s})
	return f.db.lastErrForTest()
}

// frameBytes returns a frame of w's generation for page pg (commit size
// nPage, 0: not a commit frame) chained after checksums ck, and the
// frame's checksums.
func frameBytes(w *testWAL, pg, nPage uint32, ck [2]uint32, fill byte) ([]byte, [2]uint32) {
	be := binary.BigEndian
	fr := make([]byte, walFrameHdrLen+w.pageSize)
	be.PutUint32(fr, pg)
	be.PutUint32(fr[4:], nPage)
	copy(fr[8:16], w.salt[:])
	for j := range fr[walFrameHdrLen:] {
		fr[walFrameHdrLen+j] = fill
	}
	s1, s2 := walChecksum(fr[:8], false, ck[0], ck[1])
	s1, s2 = walChecksum(fr[walFrameHdrLen:], false, s1, s2)
	be.PutUint32(fr[16:], s1)
	be.PutUint32(fr[20:], s2)
	return fr, [2]uint32{s1, s2}
}

// TestWALHeap_FramesFromTheFile: with no wal-index, the position is the
// last commit frame of the frames that validate, whatever follows them
// (frames of a transaction not committed, of an older generation, with a
// broken chain); commits of one session continue from the remembered
// position without a rescan; a restart in the session starts from the
// file; and what cannot be proven is rescanned, never published wrong.
func TestWALHeap_FramesFromTheFile(t *testing.T) {
	f := newWALFixture(t)
	w := newTestWAL(1024, [8]byte{1, 1, 1, 1, 2, 2, 2, 2})
	w.commit(3, map[uint32]byte{1: 0, 2: 10, 3: 20})
	if err := f.heapCommit(t, w.wal, 7); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	f.checkSpool(t, w.state(f.file.data))
	_, rescans := WALCounts()

	// Tails that must be ignored after the next commit.
	w.commit(4, map[uint32]byte{2: 30, 4: 40})
	uncommitted, _ := frameBytes(w, 1, 0, w.ck, 99)
	badCommit, _ := frameBytes(w, 1, 4, w.ck, 99)
	badCommit[walFrameHdrLen] ^= 1 // checksum no longer matches
	old := newTestWAL(1024, [8]byte{9, 9, 9, 9, 9, 9, 9, 9})
	oldFrame, _ := frameBytes(old, 1, 4, w.ck, 99)
	for i, tail := range [][]byte{uncommitted, badCommit, oldFrame} {
		wal := append(append([]byte{}, w.wal...), tail...)
		if err := f.heapCommit(t, wal, 7); err != nil {
			t.Fatalf("tail %d: %v", i, err)
		}
		f.checkSpool(t, w.state(f.file.data))
	}
	w.commit(5, map[uint32]byte{5: 50})
	if err := f.heapCommit(t, w.wal, 7); err != nil {
		t.Fatalf("commit after tails: %v", err)
	}
	f.checkSpool(t, w.state(f.file.data))
	if _, n := WALCounts(); n != rescans {
		t.Fatalf("%d rescans within one session", n-rescans)
	}

	// A restart in the session: every frame is in the file (a checkpoint),
	// the new generation overwrites the start of the -wal, and the older
	// generation's frames follow.
	f.file.data = w.state(f.file.data)
	prev := w.wal
	w = newTestWAL(1024, [8]byte{1, 1, 1, 2, 7, 7, 7, 7})
	w.commit(5, map[uint32]byte{3: 60})
	if err := f.heapCommit(t, append(append([]byte{}, w.wal...), prev[len(w.wal):]...), 7); err != nil {
		t.Fatalf("commit after a restart: %v", err)
	}
	f.checkSpool(t, w.state(f.file.data))
	if _, n := WALCounts(); n != rescans {
		t.Fatalf("the restart in the session was rescanned")
	}

	// The same restart seen from another session (the lock was released):
	// nothing proves the file is the remembered state: rescanned.
	f.file.data = w.state(f.file.data)
	w = newTestWAL(1024, [8]byte{1, 1, 1, 3, 8, 8, 8, 8})
	w.commit(6, map[uint32]byte{6: 70})
	if err := f.heapCommit(t, w.wal, 8); err != nil {
		t.Fatalf("commit in a new session: %v", err)
	}
	f.checkSpool(t, w.state(f.file.data))
	if _, n := WALCounts(); n != rescans+1 {
		t.Fatalf("%d rescans for a new generation in a new session, want 1", n-rescans)
	}

	// The remembered last frame was rewritten (same salts, another chain):
	// rescanned from the WAL's header.
	w2 := newTestWAL(1024, w.salt)
	w2.commit(6, map[uint32]byte{6: 80, 2: 81})
	w2.commit(6, map[uint32]byte{1: 82})
	if err := f.heapCommit(t, w2.wal, 8); err != nil {
		t.Fatalf("commit over a rewritten frame: %v", err)
	}
	f.checkSpool(t, w2.state(f.file.data))
	if _, n := WALCounts(); n != rescans+2 {
		t.Fatalf("%d rescans, want 2", n-rescans)
	}
}

// TestWALHeap_NoFrame: a commit that leaves no frame in the -wal (emptied
// by a TRUNCATE checkpoint; an empty transaction) keeps the state in the
// session; outside it the file is captured; a corrupt WAL header fails the
// capture (the spool keeps the last state), and the next commit with a
// good WAL is captured.
func TestWALHeap_NoFrame(t *testing.T) {
	f := newWALFixture(t)
	w := newTestWAL(1024, [8]byte{3, 3, 3, 3, 4, 4, 4, 4})
	w.commit(2, map[uint32]byte{1: 0, 2: 10})
	if err := f.heapCommit(t, w.wal, 1); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	f.file.data = w.state(f.file.data) // TRUNCATE checkpoint
	if err := f.heapCommit(t, []byte{}, 1); err != nil {
		t.Fatalf("empty WAL in the session: %v", err)
	}
	f.checkSpool(t, f.file.data)
	f.file.data[1500] = 77 // written by someone else after the lock was released
	if err := f.heapCommit(t, nil, 2); err != nil {
		t.Fatalf("empty WAL in a new session: %v", err)
	}
	f.checkSpool(t, f.file.data)

	good := f.file.data
	w = newTestWAL(1024, [8]byte{3, 3, 3, 4, 5, 5, 5, 5})
	w.commit(2, map[uint32]byte{2: 20})
	bad := append([]byte{}, w.wal...)
	bad[25] ^= 1 // WAL header checksum
	if err := f.heapCommit(t, bad, 2); err == nil || !errors.Is(err, errWALChain) {
		t.Fatalf("corrupt WAL header: capture error %v, want errWALChain", err)
	}
	f.checkSpool(t, good)
	if err := f.heapCommit(t, w.wal, 2); err != nil {
		t.Fatalf("commit after a corrupt header: %v", err)
	}
	f.checkSpool(t, w.state(f.file.data))
}
