// The capture state machine.
//
// Every VFS event goes through DB.capture, and the decision it makes
// depends on one comparison: the identity id of the state the event starts
// from (Commit: the identity before the transaction; Check: the file's
// current identity) against lastID, the identity of the newest state this
// process captured.
//
//  1. incremental: Commit and id == lastID. The dirty chunks are copied into
//     pending (a newer copy of a chunk replaces an older one) and a build is
//     scheduled. When the copies would take pending past the memory budget,
//     they go to a spill file instead, one chunk at a time (memory stays at
//     one chunk). lastID := the identity after the transaction.
//  2. verified: Check and id == lastID (and no rescan was asked for):
//     nothing to do.
//  3. adopt: id != lastID, the spool's manifest has version id id, no
//     rescan was asked for, and no build of this process failed since its
//     last rescan (suspect is false): that manifest becomes the base,
//     pending copies (older than it) are dropped, lastID := id. A Commit
//     then continues as in 1.
//  4. rescan: otherwise, and for Rescan events: pending is dropped and the
//     whole file is copied (sequentially, to a spill file: no hashing or
//     staging under SHARED) into a new pending set marked full, which the
//     next build publishes on no base (clearing suspect); lastID := its
//     identity, and commits that follow squash into that set as in 1. A
//     file larger than one slice is copied after the capture returns (a
//     Check, a Commit or a Rescan alike), one SHARED hold per 1 MiB slice
//     (sliced.go): lastID := the identity of the state copied, and commits
//     that start from it are captured as in 1 meanwhile, overlaid on the
//     copy when it ends; a commit from an unknown state supersedes the copy
//     and starts another. No capture copies a large file under its lock.
//  5. lost: a Rollback, an error or a recovered panic in any step, or a
//     step deferred because the spool was busy (or a sliced copy saw the
//     file change): lastID := nil (the next
//     capture adopts or rescans) and the reason is kept for Flush.
//
// The VFS holds SHARED during a capture, so a writer may be waiting for
// it: steps 3 and 4 need buildMu and the spool's flock, and wait for them
// at most captureLockWait; when they stay busy, the step is deferred (5:
// the VFS runs a Check at the next read transaction). Step 1 takes neither.
//
// Builds (background, Flush, Close) take the pending copies. A build that
// fails or panics puts them back under any copy taken since (no dirty-chunk
// information is lost), then sets suspect and forgets lastID: the next
// capture rescans rather than trusting a manifest by its version id alone.
//
// Every mutex is released by defer, so a panic (recovered by the VFS
// trampoline) leaves none held.

package tracker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// captureLockWait bounds how long a capture waits for the build lock and
// the spool's flock (see the state machine above).
const captureLockWait = 20 * time.Millisecond

// captureWALLockWait bounds the same wait for CaptureWAL: verneuilctl sync,
// verify and the copier daemon, which hold only a WAL read lock of their
// own and stall no writer while they wait. A live writer's process takes
// the spool's flock for each commit's capture and build; on a loaded
// machine those holds leave gaps that a 20 ms wait rarely met, and
// verneuilctl verify failed "capture deferred" after all its attempts.
const captureWALLockWait = 5 * time.Second

// ErrDeferred says that a capture could not take the spool in time, or
// that a sliced rescan saw the file change, and left its work to the next
// capture (the next read transaction through the VFS). Flush wraps it
// until then: callers such as `verneuilctl sync` may read again and retry.
var ErrDeferred = errors.New("capture deferred (the spool was busy, or the file changed during a sliced rescan); the next capture rescans or adopts")

// capture runs one VFS event through the state machine. A panic is
// recovered here (after every lock was released by defer) and becomes an
// error, which makes the database lost (step 5).
func (db *DB) capture(src Source, ev Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			db.log.Error("panic in capture (recovered)", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic in capture: %v", r)
		}
	}()
	// Commits the VFS queued come before this event (walqueue.go).
	db.mu.Lock()
	applied := db.takeWALQueueLocked(false)
	db.mu.Unlock()
	if applied {
		db.m.schedule(db)
	}
	if ev.Kind == Commit || ev.Kind == Rollback || ev.Kind == Rescan {
		db.setWAL(nil) // rollback mode again: a later WAL generation starts unknown
	}
	switch ev.Kind {
	case Commit:
		return db.commit(src, ev)
	case Rollback:
		db.mu.Lock()
		db.lastID = nil // the file changed without a commit we saw
		db.mu.Unlock()
	case Check:
		return db.check(src, ev.Ino)
	case WALCommit:
		return db.walCapture(src, ev)
	case WALHeapCommit:
		return db.walHeapCapture(src, ev)
	case Rescan:
		db.waitSliced(true)
		unlock, err := db.lockForCapture()
		if err != nil {
			return err
		}
		if db.startSliced(src, ev.Ino, ev.PostXattr, ev.Seq, unlock) {
			return nil // the sliced copy releases the locks
		}
		defer unlock()
		return db.rescanLocked(src, ev.Ino, ev.PostXattr, ev.Seq)
	}
	return nil
}

// lockForCapture takes buildMu and the spool's flock, waiting at most
// captureLockWait for both; ErrDeferred when they stay busy.
func (db *DB) lockForCapture() (unlock func(), err error) {
	return db.lockForCaptureWithin(captureLockWait)
}

// lockForCaptureWithin is lockForCapture waiting at most wait.
func (db *DB) lockForCaptureWithin(wait time.Duration) (unlock func(), err error) {
	deadline := time.Now().Add(wait)
	for !db.buildMu.TryLock() {
		if !time.Now().Before(deadline) {
			return nil, ErrDeferred
		}
		time.Sleep(time.Millisecond)
	}
	unlockSpool, err := db.spool.TryLock(time.Until(deadline))
	if err != nil || unlockSpool == nil {
		db.buildMu.Unlock()
		if err == nil {
			err = ErrDeferred
		}
		return nil, err
	}
	return func() { unlockSpool(); db.buildMu.Unlock() }, nil
}

// commit captures a committed write transaction (steps 1, 3, 4).
func (db *DB) commit(src Source, ev Event) error {
	size, err := src.Size()
	if err != nil {
		return fmt.Errorf("file size: %w", err)
	}
	if ev.PreHeader == nil || IsWAL(ev.PreHeader) {
		// A database in WAL mode written without a WAL the VFS follows
		// (shimwal*.c): the file lacks the WAL's frames, so it is
		// reported, never copied. A switch out of WAL mode leaves a header
		// that says rollback.
		header := make([]byte, HeaderLen)
		if err := src.ReadAt(header, 0); err != nil {
			return fmt.Errorf("read header: %w", err)
		}
		if IsWAL(header) {
			return ErrWAL
		}
	}
	pre := identity(ev.Ino, ev.PreXattr, ev.PreHeader)
	db.mu.Lock()
	known := db.lastID != nil && bytes.Equal(pre, db.lastID)
	run := db.sliced
	from, fromLen := db.lastID, db.lastLen
	db.mu.Unlock()
	if run != nil && writeLocked(src) {
		// A connection that keeps its lock after commits (locking_mode=
		// EXCLUSIVE) would hold the sliced copy off: it supersedes the
		// copy and rescans under its own lock, which no one else can
		// wait for.
		known = false
	}
	// Another process committed since lastID: continue from its records
	// (chain.go), and record this commit for the others.
	var foreign map[uint32][2]uint32
	if !known && from != nil && run == nil {
		foreign, known = db.chainFrom(from, pre, fromLen, size)
	}
	defer db.recordCommit(src, ev, pre, size)
	if !known {
		from = nil
		// Supersedes a sliced copy in progress; a rescan copies the file
		// in slices after this capture (the commit is part of it).
		adopted, err := db.adoptOrRescan(src, ev.Ino, pre, ev.PostXattr, ev.Seq)
		if err != nil || !adopted {
			return err
		}
		run = nil
	}
	// During a sliced copy, the commit's state becomes the one the copy
	// expects: its Stamp is taken here, under the commit's SHARED.
	var st *Stamp
	if run != nil {
		if s, err := run.stamp(); err == nil {
			st = &s
		} else {
			db.log.Debug("stamp for the sliced copy", "err", err)
		}
	}
	return db.copyDirty(src, ev, size, run, st, from, foreign)
}

// writeLocked reports whether the capture's connection holds more than
// SHARED (see SlicedSource).
func writeLocked(src Source) bool {
	ss, ok := src.(SlicedSource)
	return ok && ss.WriteLocked()
}

// dirtySetLocked returns the chunks a commit leaving the file at size must
// re-read: the VFS's dirty chunks, plus growth the VFS may not have seen
// (fallocate for size hints) and the partial last chunk after a shrink.
// db.mu must be held.
func (db *DB) dirtySetLocked(dirty []uint32, size int64) []uint32 {
	cs := int64(db.chunkSize())
	n := (size + cs - 1) / cs
	set := make(map[uint32]bool, len(dirty)+2)
	for _, c := range dirty {
		if int64(c) < n {
			set[c] = true
		}
	}
	if size != db.lastLen {
		for c := min(size, db.lastLen) / cs; c < n; c++ {
			set[uint32(c)] = true
		}
	}
	out := make([]uint32, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// writtenRanges maps each dirty chunk of ev to the byte range of it the
// transaction wrote, or returns nil when the VFS did not say (whole chunks).
func writtenRanges(ev Event) map[uint32][2]uint32 {
	if len(ev.Extents) != 2*len(ev.Dirty) || len(ev.Dirty) == 0 {
		return nil
	}
	m := make(map[uint32][2]uint32, len(ev.Dirty))
	for i, c := range ev.Dirty {
		m[c] = [2]uint32{ev.Extents[2*i], ev.Extents[2*i+1]}
	}
	return m
}

// copyDirty copies the dirty chunks of a commit into pending (step 1):
// into memory, or, when that would take pending past the memory budget,
// into a spill file, one chunk at a time. run is the sliced copy the
// commit saw in progress, and st the file's Stamp after the commit (nil
// when it could not be taken): the copy then expects the commit's state.
//
// foreign, when not nil, maps the chunks other processes changed since
// lastID, which was from (chain.go), to the range of each that changed:
// they are re-read too.
func (db *DB) copyDirty(src Source, ev Event, size int64, run *slicedRun, st *Stamp, from []byte, foreign map[uint32][2]uint32) (err error) {
	db.mu.Lock()
	done := false
	defer func() {
		if !done {
			// The pending copies may be a mix of two states: drop them
			// (lastID nil: the next capture rescans).
			db.pending.close()
			db.pending, db.pendingBytes, db.lastID = nil, 0, nil
		}
		db.mu.Unlock()
	}()
	if foreign != nil && !bytes.Equal(db.lastID, from) {
		return ErrDeferred // a failed build forgot the state walked from
	}
	cs := uint32(db.chunkSize())
	dirty := ev.Dirty
	if len(foreign) > 0 {
		dirty = slices.Clone(dirty)
		for c := range foreign {
			dirty = append(dirty, c)
		}
	}
	dirty = db.dirtySetLocked(dirty, size)
	if db.pending == nil {
		db.pending = &pending{chunks: make(map[uint32][]byte, len(dirty))}
	}
	p := db.pending
	grow := int64(0)
	for _, c := range dirty {
		if p.chunks[c] == nil {
			grow += int64(manifest.ChunkLen(int(c), size, cs))
		}
	}
	spill := db.pendingBytes+grow > db.m.opts.MemoryBudget
	var buf []byte
	if spill {
		buf = make([]byte, cs)
		if p.spill == nil {
			f, err := os.CreateTemp(filepath.Join(db.spool.Path, spool.TmpDir), "spill.*")
			if err != nil {
				return fmt.Errorf("spill chunk copies: %w", err)
			}
			os.Remove(f.Name()) // anonymous: gone with the process
			p.spill, p.spillEnd = f, 0
		}
		if p.spilled == nil {
			p.spilled = map[uint32]spillRef{}
		}
	}
	written := mergeRanges(writtenRanges(ev), ev.Dirty, foreign)
	// resized: chunks at or past the old or the new end of the file, which
	// may hold bytes the VFS did not see written (growth, shrink).
	resized := func(c uint32) bool {
		return size != db.lastLen && int64(c) >= min(size, db.lastLen)/int64(cs)
	}
	// Copy each dirty chunk over the pending copy of an earlier commit when
	// there is one (squashing it: only the written range is read again),
	// else into a new buffer or spill slot.
	failpoint.Hit("capture-before-copy")
	for _, c := range dirty {
		failpoint.Hit("capture-mid-copy")
		n := manifest.ChunkLen(int(c), size, cs)
		off := int64(c) * int64(cs)
		if spill && c != 0 { // chunk 0 (the header) stays in memory
			b := buf[:n]
			if err := src.ReadAt(b, off); err != nil {
				return fmt.Errorf("read chunk %d: %w", c, err)
			}
			if old, ok := p.chunks[c]; ok {
				db.pendingBytes -= int64(len(old))
				delete(p.chunks, c)
			}
			ref, ok := p.spilled[c]
			if !ok || ref.n != n {
				ref = spillRef{f: p.spill, off: p.spillEnd, n: n}
				p.spillEnd += int64(n)
			}
			if _, err := ref.f.WriteAt(b, ref.off); err != nil {
				return fmt.Errorf("spill chunk %d: %w", c, err)
			}
			p.spilled[c] = ref
			continue
		}
		delete(p.spilled, c) // this newer copy replaces a spilled one
		buf := p.chunks[c]
		lo, hi := 0, n
		if e, ok := written[c]; ok && ev.Kind == WALCommit && len(buf) > 0 && len(buf) < n {
			// A WAL commit grew the last chunk: its pages past the old end
			// are new (walgrow.go); the rest changed where it wrote.
			lo, hi = walGrownRange(e, len(buf), n)
			db.pendingBytes += int64(n - len(buf))
			buf = append(buf, make([]byte, n-len(buf))...)
			p.chunks[c] = buf
		} else if len(buf) != n {
			db.pendingBytes += int64(n - len(buf))
			buf = make([]byte, n)
			p.chunks[c] = buf
		} else if e, ok := written[c]; ok && !resized(c) {
			// The copy holds the chunk as of the previous capture (the
			// state this transaction started from): only what the
			// transaction wrote changed.
			lo, hi = min(int(e[0]), n), min(int(e[1]), n)
		}
		if lo < hi {
			if err := src.ReadAt(buf[lo:hi], off+int64(lo)); err != nil {
				return fmt.Errorf("read chunk %d: %w", c, err)
			}
		}
	}
	header := make([]byte, HeaderLen)
	if c0, ok := p.chunks[0]; ok {
		copy(header, c0)
	} else if err := src.ReadAt(header, 0); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if ev.Kind == Commit && IsWAL(header) && IsWAL(ev.PreHeader) {
		// Written in WAL mode without a WAL the VFS follows: the file
		// lacks the WAL's frames.
		return ErrWAL
	}
	seq := db.nextSeq(ev.Seq)
	vid := identity(ev.Ino, ev.PostXattr, header)
	p.length = size
	p.seq = seq
	p.versionID = vid
	p.commitTime = time.Now()
	if cur := db.sliced; cur != nil && cur == run && st != nil && bytes.Equal(cur.expectedID, db.lastID) &&
		bytes.Equal(cur.expectedID, identity(ev.Ino, ev.PreXattr, ev.PreHeader)) {
		cur.expected, cur.expectedID = *st, vid
		cur.gen++
	} // else a copy in progress sees the chain break, and restarts
	db.lastID = vid
	db.lastLen = size
	db.lastSeq = seq
	db.lastHeader = header
	db.verified = true
	done = true
	db.m.schedule(db)
	return nil
}

// check verifies, once per tracker, that the file is the state last
// captured (step 2); otherwise it adopts the spool's manifest or rescans.
func (db *DB) check(src Source, ino uint64) error {
	db.mu.Lock()
	verified := db.verified
	db.mu.Unlock()
	if verified {
		return nil
	}
	xattr, header, err := readState(src)
	if err != nil {
		return err
	}
	if IsWAL(header) {
		return db.walCheck()
	}
	cur := identity(ino, xattr, header)
	db.mu.Lock()
	known := db.lastID != nil && bytes.Equal(cur, db.lastID)
	// Set before a rescan: a failure (an error here, or of a sliced copy
	// that may end before this capture returns) resets it.
	db.verified = true
	db.mu.Unlock()
	if !known || db.spool.RescanWanted() {
		if _, err := db.adoptOrRescan(src, ino, cur, xattr, seqFromXattr(xattr)); err != nil {
			return err
		}
	}
	return nil
}

// adoptOrRescan adopts the spool's manifest when it is the state id (step
// 3, adopted true), else rescans the file, whose current version xattr
// and sequence number are xattr and seq (step 4): a large file is copied
// after the capture returns, in slices (see sliced.go).
func (db *DB) adoptOrRescan(src Source, ino uint64, id, xattr []byte, seq uint64) (adopted bool, err error) {
	db.waitSliced(true) // a newer capture supersedes a sliced copy
	unlock, err := db.lockForCapture()
	if err != nil {
		return false, err
	}
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	if db.adoptLocked(id) {
		return true, nil
	}
	db.log.Debug("file changed outside the tracker; rescanning")
	if db.startSliced(src, ino, xattr, seq, unlock) {
		unlock = nil // the sliced copy releases the locks
		return false, nil
	}
	return false, db.rescanLocked(src, ino, xattr, seq)
}

// adoptLocked makes the spool's manifest the base when it describes the
// state whose identity is id (another process captured it) and may be
// trusted. db.buildMu and the spool's flock must be held.
func (db *DB) adoptLocked(id []byte) bool {
	if db.spool.RescanWanted() {
		return false // the uploader lost staged data: rescan
	}
	db.mu.Lock()
	suspect := db.suspect
	db.mu.Unlock()
	if suspect {
		return false // a build failed since the last rescan
	}
	man, _, err := db.spool.Manifest()
	if err != nil {
		db.log.Warn("ignoring damaged spool manifest", "err", err)
		return false
	}
	if man == nil || !bytes.Equal(man.VersionID, id) || int(man.ChunkSize) != db.chunkSize() {
		return false
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.slicedErr = nil
	// Pending copies predate the adopted state: drop them.
	db.pending.close()
	db.pending, db.pendingBytes = nil, 0
	db.setBaseLocked(man)
	db.lastID = man.VersionID
	db.lastLen = man.Length
	db.lastSeq = max(db.lastSeq, man.Seq)
	return true
}

// rescanLocked copies the whole file, as a new version, into a pending set
// marked full (step 4): chunk 0 in memory, the others in a spill file, read
// and written in slices of 1 MiB. Nothing is hashed or staged here (the VFS
// holds SHARED): the next build does it, outside the capture, and applies
// the copies to no base. Commits that follow squash into that set. db.mu
// is taken; db.buildMu must be held.
func (db *DB) rescanLocked(src Source, ino uint64, xattr []byte, seq uint64) (err error) {
	size, err := src.Size()
	if err != nil {
		return fmt.Errorf("file size: %w", err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.pending.close()
	db.pending, db.pendingBytes = nil, 0
	db.lastID = nil
	db.slicedErr = nil
	seq = db.nextSeq(max(seq, uint64(time.Now().UnixNano())))
	db.spool.TakeRescan()

	p, buf, err := db.newRescanSet(size)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	cs := db.chunkSize()
	n := manifest.ChunkCount(size, uint32(cs))
	slice := len(buf) / cs
	for i := 0; i < n; i += slice {
		k := min(slice, n-i)
		b := buf[:min(size, int64(i+k)*int64(cs))-int64(i)*int64(cs)]
		if err := src.ReadAt(b, int64(i)*int64(cs)); err != nil {
			return fmt.Errorf("rescan chunk %d: %w", i, err)
		}
		if err := db.addSlice(p, b, i, k, size); err != nil {
			return err
		}
	}
	db.pendingBytes = int64(len(p.chunks[0]))
	header := make([]byte, HeaderLen)
	copy(header, p.chunks[0])
	vid := identity(ino, xattr, header)
	p.length, p.seq, p.versionID, p.commitTime = size, seq, vid, time.Now()
	db.pending = p
	db.lastID = vid
	db.lastLen = size
	db.lastSeq = max(db.lastSeq, seq)
	db.m.schedule(db)
	return nil
}
