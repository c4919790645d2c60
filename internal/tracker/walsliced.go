// The sliced WAL rescan: a WAL capture that can neither continue from a
// remembered position nor adopt the spool's manifest (after an
// unwitnessed restart or truncation, a commit that bypassed the VFS, the
// first commit of a process that cannot adopt) no longer copies the whole
// state under the WAL write lock.
//
// Under the write lock the capture validates frames 1..mxFrame of the
// generation and builds the page -> frame map (reading the -wal, not the
// database), makes that position the remembered one (so that the commits
// that follow are captured incrementally, their chunks copied into
// pending as usual) and returns. A goroutine, holding buildMu and the
// spool's flock, then copies the state at that position in slices of
// 1 MiB, outside any lock that writers wait for: pages with a frame in
// the map from the -wal (frames of a generation never change until a
// restart), the others from the database file (each slice under a
// SHARED lock of its own, which WAL writers do not wait for). After each
// slice it checks that the -wal's header still has the generation's
// salts (a restart rewrites it before any frame).
//
// A checkpoint may copy into the database file, during the copy, a page
// of a commit after the copied position: that page then belongs to a
// commit captured after it, whose chunk copy is laid over the slice. So
// the copy ends only when every commit published since is one the
// tracker captured: the chain of captures is intact (lastID is set and
// the remembered position is of the same generation) and the -wal holds
// no commit frame after the remembered position (a commit frame must be
// written before it is published, and frames are removed only by a
// restart). Then the copy, overlaid with the chunks captured since,
// becomes the pending set (full, on no base): the state at the
// remembered position. A commit that the tracker has not captured yet
// makes it wait (at most sliceSettleLimit) for that capture; a restart,
// a broken chain or a capture that must rescan or adopt abandons the
// copy: nothing is published and the next capture rescans under the
// write lock, as before (never a wrong replica).

package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// walSliced counts sliced WAL copies started, installed and abandoned.
var walSlicedStarted, walSlicedDone, walSlicedAbandoned atomic.Int64

// WALSlicedCounts returns how many sliced WAL rescans this process
// started, installed as the pending state, and abandoned: tests and
// benchmarks.
func WALSlicedCounts() (started, done, abandoned int64) {
	return walSlicedStarted.Load(), walSlicedDone.Load(), walSlicedAbandoned.Load()
}

// walCopyState is the sliced WAL copy of a database.
type walCopyState struct {
	// mu is held by every WAL capture, and by the copy while it ends
	// (installs or abandons): a capture never runs between the two, so
	// it never copies a commit's chunks over a state the copy dropped.
	// The copy only tries it, giving up when a capture aborts it.
	mu sync.Mutex
	// Guarded by db.mu.
	run *walSlicedRun
	// underLock: the last sliced copy was abandoned; the next rescan
	// copies under the write lock (so that a database whose copies keep
	// failing is still captured).
	underLock bool
}

// walSlicedRun is a sliced copy of a WAL state in progress.
type walSlicedRun struct {
	abort atomic.Bool
	done  chan struct{}
	r     SliceReader
	wal   *os.File
	st    *walState // the copied position (its own frame map)
	id    []byte    // the identity of that state
	size  int64
	seq   uint64
}

// sliceSource reads the database file through a SliceReader.
type sliceSource struct{ r SliceReader }

func (s sliceSource) ReadAt(p []byte, off int64) error { return s.r.ReadAt(p, off) }
func (s sliceSource) Size() (int64, error)             { return 0, errors.New("sliceSource: no size") }
func (s sliceSource) Xattr() ([]byte, error)           { return nil, nil }

// startWALSliced starts a sliced copy of the state st (validated frames
// up to the capture's position) when src can open a SliceReader and the
// state is larger than one slice; started false otherwise (the caller
// copies under the write lock). On success the goroutine owns unlock.
// The WAL write lock is held.
func (db *DB) startWALSliced(src Source, wal io.ReaderAt, walPath string, st *walState, ino uint64, unlock func()) (started bool) {
	db.mu.Lock()
	underLock := db.walCopy.underLock
	db.walCopy.underLock = false
	db.mu.Unlock()
	ss, ok := src.(SlicedSource)
	size := int64(st.pos.nPage) * int64(st.pos.pageSize)
	if underLock || !ok || writeLocked(src) || size <= sliceBytes {
		return false
	}
	header := make([]byte, HeaderLen)
	if err := (&walView{file: src, wal: wal, st: st}).ReadAt(header, 0); err != nil {
		return false
	}
	r, err := ss.OpenSlices()
	if err != nil {
		db.log.Debug("sliced WAL rescan unavailable; copying under the write lock", "err", err)
		return false
	}
	walf, err := os.Open(walPath)
	if err != nil {
		r.Close()
		return false
	}
	db.spool.TakeRescan()
	run := &walSlicedRun{done: make(chan struct{}), r: r, wal: walf, size: size,
		st: &walState{pos: st.pos, frames: maps.Clone(st.frames)}, id: identity(ino, st.pos.id(), header)}
	db.mu.Lock()
	db.pending.close()
	db.pending, db.pendingBytes = nil, 0
	db.slicedErr = nil
	db.lastID, db.lastLen = run.id, size
	run.seq = db.nextSeq(0)
	db.lastSeq = run.seq
	db.wal = st
	db.walCopy.run = run
	db.mu.Unlock()
	walSlicedStarted.Add(1)
	go db.runWALSliced(run, unlock)
	return true
}

// stopWALSliced abandons a sliced WAL copy in progress and waits for it;
// stopped is true when there was one (the remembered position is then
// gone). Neither buildMu nor db.mu may be held.
func (db *DB) stopWALSliced() (stopped bool) {
	db.mu.Lock()
	run := db.walCopy.run
	db.mu.Unlock()
	if run == nil {
		return false
	}
	run.abort.Store(true)
	<-run.done
	return true
}

// lockCaptures takes walCopy.mu for the copy, false (not taken) once the
// copy is aborted: the capture that aborted it holds the lock and waits.
func (db *DB) lockCaptures(run *walSlicedRun) bool {
	for {
		if run.abort.Load() {
			return false
		}
		if db.walCopy.mu.TryLock() {
			return true
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// abortWALSlicedLocked asks a sliced WAL copy in progress to stop (the
// remembered position is dropped). db.mu is held.
func (db *DB) abortWALSlicedLocked() {
	if run := db.walCopy.run; run != nil {
		run.abort.Store(true)
	}
}

// runWALSliced copies the state for startWALSliced and installs it, or
// abandons it.
func (db *DB) runWALSliced(run *walSlicedRun, unlock func()) {
	defer close(run.done)
	defer unlock()
	defer run.wal.Close()
	defer run.r.Close()
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				db.log.Error("panic in sliced WAL rescan (recovered)", "panic", v, "stack", string(debug.Stack()))
				err = fmt.Errorf("panic in sliced WAL rescan: %v", v)
			}
		}()
		p, err := db.copyWALSlices(run)
		if err != nil {
			return err
		}
		return db.finishWALSliced(run, p)
	}()
	if err == nil {
		walSlicedDone.Add(1)
		return
	}
	walSlicedAbandoned.Add(1)
	if db.lockCaptures(run) {
		defer db.walCopy.mu.Unlock()
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.walCopy.run = nil
	db.walCopy.underLock = true
	// Commits captured during the copy copied only their own chunks:
	// without the copy they describe no state. Flush reports the loss
	// until a capture rescans or adopts.
	db.pending.close()
	db.pending, db.pendingBytes = nil, 0
	db.lastID = nil
	db.wal = nil
	db.slicedErr = fmt.Errorf("rescan: %w: %w", err, ErrDeferred)
	if !errors.Is(err, errSlicedAborted) {
		db.log.Info("sliced WAL rescan abandoned; the next capture rescans under the write lock", "err", err)
	}
}

// copyWALSlices copies the state of run into a new full pending set,
// one slice at a time (see the top of this file).
func (db *DB) copyWALSlices(run *walSlicedRun) (*pending, error) {
	view := &walView{file: sliceSource{run.r}, wal: run.wal, st: run.st}
	return db.copyInSlices(run.size, func(b []byte, off int64) error {
		if err := lockSlice(&slicedRun{r: run.r}, &run.abort); err != nil {
			return err
		}
		rerr := view.ReadAt(b, off)
		if err := errors.Join(rerr, run.r.Unlock()); err != nil {
			return err
		}
		return walSameGeneration(run.wal, run.st.pos)
	})
}

// walSameGeneration checks that the -wal's header has pos's salts.
func walSameGeneration(wal *os.File, pos walPos) error {
	h := make([]byte, walHdrLen)
	if _, err := wal.ReadAt(h, 0); err != nil {
		return fmt.Errorf("read WAL header: %w: %w", err, errSlicedChanged)
	}
	if [8]byte(h[16:24]) != pos.salt {
		return fmt.Errorf("the WAL was restarted: %w", errSlicedChanged)
	}
	return nil
}

// walCommitAfter reports whether the -wal holds a commit frame after pos
// in pos's generation (a valid continuation of its checksum chain).
func walCommitAfter(wal *os.File, pos walPos) (bool, error) {
	if err := walSameGeneration(wal, pos); err != nil {
		return false, err
	}
	frameLen := walFrameHdrLen + pos.pageSize
	fr := make([]byte, frameLen)
	be := binary.BigEndian
	s1, s2 := pos.ck[0], pos.ck[1]
	for f := pos.mx + 1; ; f++ {
		if _, err := wal.ReadAt(fr, frameOffset(f, pos.pageSize)); err != nil {
			return false, nil // the end of the -wal
		}
		if be.Uint32(fr) == 0 || [8]byte(fr[8:16]) != pos.salt {
			return false, nil
		}
		s1, s2 = walChecksum(fr[:8], pos.bigEnd, s1, s2)
		s1, s2 = walChecksum(fr[walFrameHdrLen:], pos.bigEnd, s1, s2)
		if s1 != be.Uint32(fr[16:]) || s2 != be.Uint32(fr[20:]) {
			return false, nil
		}
		if be.Uint32(fr[4:]) != 0 {
			return true, nil
		}
	}
}

// finishWALSliced installs the copy p, overlaid with the chunks captured
// since, as the pending set once every published commit was captured
// (see the top of this file), waiting at most sliceSettleLimit for
// captures in flight.
func (db *DB) finishWALSliced(run *walSlicedRun, p *pending) error {
	deadline := time.Now().Add(sliceSettleLimit)
	for {
		if !db.lockCaptures(run) {
			p.close()
			return errSlicedAborted
		}
		db.mu.Lock()
		st := db.wal
		if db.lastID == nil || st == nil || st.pos.salt != run.st.pos.salt || st.pos.mx < run.st.pos.mx {
			db.mu.Unlock()
			db.walCopy.mu.Unlock()
			p.close()
			return fmt.Errorf("a capture broke the chain from the copied position: %w", errSlicedChanged)
		}
		after, err := walCommitAfter(run.wal, st.pos)
		if err != nil {
			db.mu.Unlock()
			db.walCopy.mu.Unlock()
			p.close()
			return err
		}
		if !after {
			db.installCopyLocked(p, run.size, run.seq, run.id)
			db.walCopy.run = nil
			db.mu.Unlock()
			db.walCopy.mu.Unlock()
			return nil
		}
		db.mu.Unlock()
		db.walCopy.mu.Unlock()
		if time.Now().After(deadline) {
			p.close()
			return fmt.Errorf("a commit published after the copied position was not captured: %w", errSlicedChanged)
		}
		time.Sleep(time.Millisecond)
	}
}
