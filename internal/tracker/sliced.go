// The sliced rescan: a rescan of a large file copies it outside the
// capture, one bounded SHARED hold per slice, whatever event asked for it
// (a read transaction's Check, or a Commit or Rescan whose starting state
// is unknown).
//
// The capture that must rescan a file larger than one slice, through a
// Source that can open a SliceReader, records the file's Stamp (inode,
// version xattr, header, size, and mtime and ctime to the nanosecond)
// while the VFS holds SHARED, makes that state the one it tracks (lastID)
// and returns. A goroutine, holding buildMu and the spool's flock that the
// capture took, then copies the file in slices of 1 MiB: for each slice it
// takes SHARED on a private file (never waiting: a busy lock is retried
// after a millisecond, for at most sliceBusyLimit in a row), reads the
// slice, takes the Stamp again and releases SHARED.
//
// Commits captured while the copy runs that start from the state it
// tracks are captured as usual (their dirty chunks are copied into
// pending) and, under db.mu, make their own state the expected one: they
// take the Stamp under their own SHARED. A slice is kept when its Stamp is
// the expected one and the chain of captures is intact (lastID is the
// expected state's identity): every chunk that changed since that state
// is then in pending, so the copy overlaid with pending is the file's
// current state, and when the copy ends it becomes the pending set (full,
// built on no base). A slice read after a commit whose capture has not
// run yet waits for it (at most sliceSettleLimit) and is read again.
//
// Anything else means the file changed outside the captures: a writer
// that bypasses the VFS, a crash or a rollback, a capture that failed.
// The copy then restarts from the file's current state (pending dropped),
// at most maxSlicedRestarts times, and only when no journal that might be
// hot lies next to the file; otherwise it is abandoned: nothing is
// published, Flush reports ErrDeferred, and the next capture rescans. A
// commit whose starting state is unknown supersedes a copy in progress and
// starts another. Where timestamps have no nanoseconds, or the Source
// cannot read slices, the capture copies the file itself, as before.
// Flush, Close and verneuil_flush wait for the copy (buildMu), so a flush
// still ends with the replica equal to the file.

package tracker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// sliceBytes is how much of the file one SHARED hold reads.
const sliceBytes = 1 << 20

// sliceSettleLimit bounds how long a slice read in another state than the
// expected one waits for a capture to expect a new state, and a restart
// for a journal next to the file to go away.
const sliceSettleLimit = 250 * time.Millisecond

// maxSlicedRestarts bounds the restarts of one sliced copy.
const maxSlicedRestarts = 3

// sliceBusyLimit bounds how long a slice waits, in a row, for a writer's
// lock before the sliced copy gives up (ErrDeferred).
const sliceBusyLimit = 2 * time.Second

// Stamp describes the database file at one moment.
type Stamp struct {
	Ino                 uint64
	Size                int64
	MtimeSec, MtimeNsec int64
	CtimeSec, CtimeNsec int64
	Xattr               []byte // nil when absent or unsupported
	Header              []byte // the first HeaderLen bytes
}

// fine reports whether the timestamps have nanoseconds: coarse ones
// could miss a rollback between two slices.
func (s Stamp) fine() bool { return s.MtimeNsec != 0 || s.CtimeNsec != 0 }

func (s Stamp) equal(o Stamp) bool {
	return s.Ino == o.Ino && s.Size == o.Size && s.MtimeSec == o.MtimeSec && s.MtimeNsec == o.MtimeNsec &&
		s.CtimeSec == o.CtimeSec && s.CtimeNsec == o.CtimeNsec &&
		bytes.Equal(s.Xattr, o.Xattr) && bytes.Equal(s.Header, o.Header)
}

// SliceReader reads the database file outside a capture, under SHARED
// locks of its own. It is used by one goroutine at a time.
type SliceReader interface {
	// Lock takes SHARED without waiting; ok false when a writer holds
	// the file.
	Lock() (ok bool, err error)
	// Unlock releases SHARED.
	Unlock() error
	// ReadAt fills p from offset off (SHARED held); bytes past the end
	// read as zeros.
	ReadAt(p []byte, off int64) error
	// Stamp describes the file now (SHARED held, by Lock or by the
	// capture that opened the reader).
	Stamp() (Stamp, error)
	// Close releases the reader (and SHARED if held).
	Close() error
}

// SlicedSource is a Source that can open a SliceReader on its file during
// a capture; the VFS's sources are.
type SlicedSource interface {
	Source
	OpenSlices() (SliceReader, error)
	// WriteLocked reports whether the capture's connection holds more
	// than SHARED (locking_mode=EXCLUSIVE keeps EXCLUSIVE after a
	// commit): no other connection, nor a sliced copy, can read the file
	// until it lets go, so the capture copies the file itself.
	WriteLocked() bool
}

// slicedRun is a sliced copy in progress.
type slicedRun struct {
	abort atomic.Bool   // a capture supersedes the copy
	done  chan struct{} // closed after buildMu was released

	rmu    sync.Mutex // one call on r at a time (the copy's, or a commit's Stamp)
	r      SliceReader
	closed bool

	// Guarded by db.mu.
	start      Stamp  // the state the copy (re)started from
	expected   Stamp  // the newest state captured since
	expectedID []byte // its identity: the chain is intact while lastID is it
	gen        uint64 // counts changes of expected
}

// errSlicedAborted: a capture superseded the copy.
var errSlicedAborted = errors.New("sliced rescan superseded by a capture")

// errSlicedChanged: the file changed outside the captures during the copy.
var errSlicedChanged = errors.New("the file changed outside capture during the sliced copy")

// stamp takes the file's Stamp through the copy's reader (the caller
// holds SHARED, through the reader or a capture).
func (run *slicedRun) stamp() (Stamp, error) {
	run.rmu.Lock()
	defer run.rmu.Unlock()
	if run.closed {
		return Stamp{}, errors.New("sliced rescan: the reader is closed")
	}
	return run.r.Stamp()
}

// with runs f on the reader, alone.
func (run *slicedRun) with(f func(r SliceReader) error) error {
	run.rmu.Lock()
	defer run.rmu.Unlock()
	return f(run.r)
}

func (run *slicedRun) close() {
	run.rmu.Lock()
	defer run.rmu.Unlock()
	run.closed = true
	run.r.Close()
}

// resetLocked makes st the state the copy tracks, from scratch: pending
// (older) is dropped. db.mu must be held.
func (db *DB) resetSlicedLocked(run *slicedRun, st Stamp) {
	db.pending.close()
	db.pending, db.pendingBytes = nil, 0
	run.start, run.expected = st, st
	run.expectedID = identity(st.Ino, st.Xattr, st.Header)
	run.gen++
	db.lastID = run.expectedID
	db.lastLen = st.Size
	db.verified = true
	db.slicedErr = nil
}

// startSliced starts a sliced rescan of the file (step 4) when src can
// read slices, the file is larger than one slice and its timestamps have
// nanoseconds; started false otherwise (the caller rescans under the
// capture). On success the goroutine owns unlock (buildMu and the spool's
// flock, held by the caller). The VFS holds SHARED.
func (db *DB) startSliced(src Source, ino uint64, xattr []byte, seq uint64, unlock func()) (started bool) {
	ss, ok := src.(SlicedSource)
	if !ok || writeLocked(src) {
		return false
	}
	size, err := src.Size()
	if err != nil || size <= sliceBytes {
		return false
	}
	r, err := ss.OpenSlices()
	if err != nil {
		db.log.Debug("sliced rescan unavailable; rescanning under the capture", "err", err)
		return false
	}
	st0, err := r.Stamp()
	if err != nil || !st0.fine() || st0.Ino != ino || st0.Size != size || !bytes.Equal(st0.Xattr, xattr) || IsWAL(st0.Header) {
		r.Close()
		return false
	}
	db.spool.TakeRescan()
	run := &slicedRun{done: make(chan struct{}), r: r}
	db.mu.Lock()
	db.resetSlicedLocked(run, st0)
	seq = db.nextSeq(max(seq, uint64(time.Now().UnixNano())))
	db.lastSeq = seq
	db.sliced = run // done is closed by runSliced, whatever happens
	db.mu.Unlock()
	go db.runSliced(seq, unlock, run)
	return true
}

// runSliced copies the file for startSliced, restarting it when the file
// changed outside the captures, and makes the copy the pending set, or
// gives up.
func (db *DB) runSliced(seq uint64, unlock func(), run *slicedRun) {
	defer close(run.done)
	defer unlock()
	defer run.close()
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				db.log.Error("panic in sliced rescan (recovered)", "panic", v, "stack", string(debug.Stack()))
				err = fmt.Errorf("panic in sliced rescan: %v", v)
			}
		}()
		for restarts := 0; ; restarts++ {
			p, err := db.copySlices(run)
			if err == nil && db.finishSliced(run, p, seq) {
				return nil
			}
			if err == nil {
				err = errSlicedChanged // the chain broke after the last slice
			}
			if !errors.Is(err, errSlicedChanged) || restarts == maxSlicedRestarts {
				return err
			}
			if err := db.restartSliced(run); err != nil {
				return err
			}
			db.log.Debug("the file changed outside capture during the sliced copy; restarted")
		}
	}()
	if err == nil {
		return
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.sliced = nil
	// Commits captured during the copy copied only their own chunks:
	// without the copy, they describe no state.
	db.pending.close()
	db.pending, db.pendingBytes = nil, 0
	db.lastID = nil
	if !errors.Is(err, errSlicedAborted) {
		db.log.Info("sliced rescan abandoned; the next capture rescans", "err", err)
		db.verified = false
		db.slicedErr = fmt.Errorf("rescan: %w: %w", err, ErrDeferred)
	}
}

// finishSliced makes the copy p, overlaid with the chunks of the commits
// captured since it started, the pending set; false when the chain of
// captures broke (p is released).
func (db *DB) finishSliced(run *slicedRun, p *pending, seq uint64) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	if !bytes.Equal(db.lastID, run.expectedID) {
		p.close()
		return false
	}
	db.installCopyLocked(p, run.start.Size, seq, run.expectedID)
	db.sliced = nil
	return true
}

// installCopyLocked makes the sliced copy p of the state id (size bytes,
// numbered seq), overlaid with the chunks of the commits captured since
// it started, the pending set, and schedules a build. db.mu is held.
func (db *DB) installCopyLocked(p *pending, size int64, seq uint64, id []byte) {
	p.length, p.seq, p.versionID, p.commitTime = size, seq, id, time.Now()
	if o := db.pending; o != nil {
		overlay(p, o)
		p.length, p.seq, p.versionID, p.commitTime = o.length, o.seq, o.versionID, o.commitTime
	}
	db.pending, db.pendingBytes = p, 0
	for _, data := range p.chunks {
		db.pendingBytes += int64(len(data))
	}
	db.slicedErr = nil
	db.m.schedule(db)
}

// overlay puts the copies of the newer set o over those of p.
func overlay(p, o *pending) {
	for c, data := range o.chunks {
		delete(p.spilled, c)
		p.chunks[c] = data
	}
	for c, r := range o.spilled {
		delete(p.chunks, c)
		p.spilled[c] = r
	}
	o.chunks, o.spilled = nil, nil
	if o.spill != nil && o.spill != p.spill {
		// p.close releases o's spill file through p.spilled; keep it
		// reachable when none of its slots survived.
		p.extra = append(p.extra, o.spill)
	}
	p.extra = append(p.extra, o.extra...)
}

// restartSliced makes the file's current state the one the copy tracks,
// when no journal that might be hot lies next to it (the state could be a
// crashed writer's torn one).
func (db *DB) restartSliced(run *slicedRun) error {
	deadline := time.Now().Add(sliceSettleLimit)
	for {
		if err := lockSlice(run, &run.abort); err != nil {
			return err
		}
		st, err := run.stamp()
		ok := err == nil && !journalMayBeHot(db.path)
		if ok {
			if !st.fine() || IsWAL(st.Header) {
				run.with(func(r SliceReader) error { return r.Unlock() })
				return fmt.Errorf("restart: the file's timestamps are coarse or it is in WAL mode: %w", errSlicedChanged)
			}
			db.mu.Lock()
			db.resetSlicedLocked(run, st)
			db.mu.Unlock()
		}
		uerr := run.with(func(r SliceReader) error { return r.Unlock() })
		if err := errors.Join(err, uerr); err != nil {
			return fmt.Errorf("restart the sliced copy: %w", err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restart: a journal lies next to the file: %w", errSlicedChanged)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// journalMayBeHot reports whether the rollback journal of the database at
// path exists with a header (a writer's live journal, or a crashed one's
// hot journal).
func journalMayBeHot(path string) bool {
	f, err := os.Open(path + "-journal")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	var b [8]byte
	n, _ := f.ReadAt(b[:], 0)
	return n == len(b) && b != [8]byte{}
}

// copySlices copies the file from the state the copy (re)started from into
// a new full pending set, one SHARED hold per slice, keeping a slice only
// when it was read in the state the captures expect (see above).
func (db *DB) copySlices(run *slicedRun) (*pending, error) {
	db.mu.Lock()
	size := run.start.Size
	db.mu.Unlock()
	return db.copyInSlices(size, func(b []byte, off int64) error { return db.readSlice(run, b, off) })
}

// copyInSlices copies size bytes into a new full pending set, one slice
// at a time, each filled by read (the sliced copies of both journal
// families).
func (db *DB) copyInSlices(size int64, read func(b []byte, off int64) error) (p *pending, err error) {
	p, buf, err := db.newRescanSet(size)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.close()
			p = nil
		}
	}()
	cs := db.chunkSize()
	n := manifest.ChunkCount(size, uint32(cs))
	slice := len(buf) / cs
	for i := 0; i < n; i += slice {
		k := min(slice, n-i)
		b := buf[:min(size, int64(i+k)*int64(cs))-int64(i)*int64(cs)]
		if err := read(b, int64(i)*int64(cs)); err != nil {
			return nil, fmt.Errorf("rescan chunk %d: %w", i, err)
		}
		if err := db.addSlice(p, b, i, k, size); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// readSlice fills b from offset off under one SHARED hold read in the
// expected state; when the file is in another, it waits for a capture to
// expect a new state and reads again, for at most sliceSettleLimit.
func (db *DB) readSlice(run *slicedRun, b []byte, off int64) error {
	deadline := time.Now().Add(sliceSettleLimit)
	for {
		if err := lockSlice(run, &run.abort); err != nil {
			return err
		}
		failpoint.Hit("rescan-slice-held")
		var st Stamp
		var serr error
		rerr := run.with(func(r SliceReader) error { return r.ReadAt(b, off) })
		if rerr == nil {
			st, serr = run.stamp()
		}
		uerr := run.with(func(r SliceReader) error { return r.Unlock() })
		if err := errors.Join(rerr, serr, uerr); err != nil {
			return err
		}
		// st describes the state the slice was read in: it is compared
		// after SHARED was released.
		db.mu.Lock()
		ok := st.equal(run.expected)
		intact := bytes.Equal(db.lastID, run.expectedID)
		gen := run.gen
		db.mu.Unlock()
		switch {
		case !intact:
			return errSlicedChanged
		case ok:
			return nil
		}
		// Another state: a commit whose capture has not run yet, or a
		// change outside the captures.
		for {
			if run.abort.Load() {
				return errSlicedAborted
			}
			if time.Now().After(deadline) {
				return errSlicedChanged
			}
			time.Sleep(time.Millisecond)
			db.mu.Lock()
			moved := run.gen != gen
			db.mu.Unlock()
			if moved {
				break
			}
		}
	}
}

// lockSlice takes SHARED for one slice, retrying while a writer holds the
// file, for at most sliceBusyLimit.
func lockSlice(run *slicedRun, abort *atomic.Bool) error {
	deadline := time.Now().Add(sliceBusyLimit)
	for {
		if abort.Load() {
			return errSlicedAborted
		}
		var ok bool
		err := run.with(func(r SliceReader) (err error) { ok, err = r.Lock(); return err })
		if err != nil {
			return fmt.Errorf("rescan: lock: %w", err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rescan: a writer held the file for %v: %w", sliceBusyLimit, ErrDeferred)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitSliced supersedes (abort true) or waits for a sliced copy in
// progress. It must not be called with buildMu held.
func (db *DB) waitSliced(abort bool) {
	db.mu.Lock()
	run := db.sliced
	db.mu.Unlock()
	if run == nil {
		return
	}
	if abort {
		run.abort.Store(true)
	}
	<-run.done
}

// slicedUnsettled reports whether a sliced copy runs or was abandoned:
// the VFS then checks again at the next read transaction (which rescans
// after an abandoned copy).
func (db *DB) slicedUnsettled() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.sliced != nil || db.slicedErr != nil
}

// newRescanSet returns an empty full pending set for a file of size bytes
// (with its spill file when the file has more than one chunk) and a buffer
// of one slice.
func (db *DB) newRescanSet(size int64) (*pending, []byte, error) {
	cs := db.chunkSize()
	n := manifest.ChunkCount(size, uint32(cs))
	p := &pending{chunks: map[uint32][]byte{}, spilled: make(map[uint32]spillRef, n), full: true}
	if n > 1 {
		f, err := os.CreateTemp(filepath.Join(db.spool.Path, spool.TmpDir), "spill.*")
		if err != nil {
			return nil, nil, fmt.Errorf("rescan: %w", err)
		}
		os.Remove(f.Name()) // anonymous: gone with the process
		p.spill = f
	}
	// Chunks per read: a slice, or the whole file when it is smaller (a
	// new database's first capture reads 8 KiB, not 1 MiB).
	slice := max(1, min(sliceBytes/cs, n))
	return p, make([]byte, slice*cs), nil
}

// addSlice adds the k chunks from chunk i that b holds to the rescan set
// p of a file of size bytes: chunk 0 in memory, the others to the spill
// file.
func (db *DB) addSlice(p *pending, b []byte, i, k int, size int64) error {
	cs := db.chunkSize()
	for j := range k {
		c := i + j
		data := b[j*cs : j*cs+manifest.ChunkLen(c, size, uint32(cs))]
		if c == 0 {
			p.chunks[0] = append([]byte(nil), data...)
			continue
		}
		p.spilled[uint32(c)] = spillRef{f: p.spill, off: p.spillEnd, n: len(data)}
		p.spillEnd += int64(len(data))
	}
	from := 0
	if i == 0 {
		from = len(p.chunks[0]) // chunk 0 stays in memory
	}
	if from < len(b) {
		if _, err := p.spill.WriteAt(b[from:], p.spillEnd-int64(len(b)-from)); err != nil {
			return fmt.Errorf("rescan: spill: %w", err)
		}
	}
	return nil
}
