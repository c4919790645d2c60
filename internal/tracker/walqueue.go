// WAL commits queued by the VFS without a Capture call (docs/
// ARCHITECTURE.md, "WAL replication: queued commits").
//
// After a WAL capture that continued from its remembered position, the
// tracker enables the database's queue (Options.WALQueues) with that
// position and the chunks its pending set holds whole. The VFS then queues
// each commit that continues the position, keeps the database size and
// writes only pages of those chunks: a copy of its frames, no Go call. The
// tracker takes the queue, which disables it until the next such capture:
//
//   - at the start of every capture of the database, before the event;
//   - in every build, before it takes the pending set (whose chunk copies
//     the queue's commits are applied to, and which the build consumes).
//
// Taking the queue applies its commits in memory: the frames' checksum
// chain is validated from the remembered position to the queue's last
// commit (walState.extend, as for frames read from the -wal), and their
// pages are copied over the pending chunk copies; the state is then the
// last queued commit, as if it had been captured. Nothing is read from the
// database file or the -wal, so a build may do it without any SQLite lock.
// A queue that does not start at the remembered position (a capture failed
// or rescanned since it was enabled) is dropped: the commits are in the
// -wal and the file, and the next capture reads them from there as it would
// have without the queue.

package tracker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// WALQueue is the VFS's queue of WAL commits of one database.
type WALQueue interface {
	// Take removes the queued commits, if any. Unless keep is set, it
	// disables queueing until Enable; with keep, the queue goes on from
	// its position (the taker applied what it took).
	Take(keep bool) (QueuedWAL, bool)
	// Enable lets the VFS queue commits that continue the wal-index header
	// pos and write only pages of chunks (chunkSize bytes each).
	Enable(pos []byte, chunks []uint32, chunkSize int)
	// OpenWAL returns a descriptor of the database's -wal (nil: none is
	// open): the frames taken are compared with the file's.
	OpenWAL() *os.File
}

// QueuedWAL is what Take returns.
type QueuedWAL struct {
	From, To []byte // wal-index headers before the first and after the last commit
	Frames   []byte // the frames after From, as the committing connections wrote them
	Commits  int
	Last     time.Time // when the last one was queued
	Lost     bool      // commits were queued but could not be handed over
	Release  func()    // frees Frames (nil: nothing to free)
}

// maxQueueChunks is how many chunks a queue may allow (the VFS's limit).
const maxQueueChunks = 64

var (
	walQueueApplied   atomic.Int64 // queues applied
	walQueueCommits   atomic.Int64 // commits in them
	walQueueDiscarded atomic.Int64 // queues dropped (their commits are read from the -wal later)
)

// WALQueueStats returns the queues applied, the commits they held, and the
// queues dropped, since the process started.
func WALQueueStats() (applied, commits, discarded int64) {
	return walQueueApplied.Load(), walQueueCommits.Load(), walQueueDiscarded.Load()
}

// takeWALQueueLocked applies the database's queued WAL commits (see the
// top of this file) and reports whether it did (the caller schedules a
// build, unless it is one); keep leaves the queue enabled (a drain between
// builds). db.mu is held.
func (db *DB) takeWALQueueLocked(keep bool) (applied bool) {
	if db.walq == nil {
		return false
	}
	q, ok := db.walq.Take(keep)
	if !ok {
		return false
	}
	err := db.applyWALQueueLocked(q)
	if q.Release != nil {
		q.Release()
	}
	if err != nil {
		walQueueDiscarded.Add(1)
		db.log.Debug("queued WAL commits not applied; the next capture reads them from the -wal", "commits", q.Commits, "err", err)
		// Committed but not captured: a flush says so until the next
		// capture (a commit through the VFS) publishes them.
		db.lastErr = fmt.Errorf("%d queued WAL commits could not be applied (the next commit through the VFS captures them): %w", q.Commits, err)
		if keep {
			// What is queued from now on continues what was dropped.
			if q, ok := db.walq.Take(false); ok && q.Release != nil {
				q.Release()
			}
		}
		return false
	}
	walQueueApplied.Add(1)
	walQueueCommits.Add(int64(q.Commits))
	return true
}

// drainWALQueue applies the queued commits of the database and leaves the
// queue enabled (WALQueued: the queue grew large between builds).
func (db *DB) drainWALQueue() {
	defer db.draining.Store(false)
	db.mu.Lock()
	applied := db.takeWALQueueLocked(true)
	db.mu.Unlock()
	if applied {
		db.m.schedule(db)
	}
}

// queueDropped says why queued commits were not applied.
type queueDropped string

func (e queueDropped) Error() string { return string(e) }

func (db *DB) applyWALQueueLocked(q QueuedWAL) error {
	st := db.wal
	from, okFrom := parseWALIndexHeader(q.From)
	to, okTo := parseWALIndexHeader(q.To)
	switch {
	case q.Lost:
		return queueDropped("the queue could not be copied")
	case !okFrom || !okTo:
		return queueDropped("invalid wal-index header")
	case st == nil || st.heapSession != 0 || !st.pos.same(from) || st.pos.pageSize != to.pageSize:
		return queueDropped("the queue does not start at the remembered position")
	case db.lastID == nil || db.pending == nil || db.sliced != nil || db.walCopy.run != nil || db.lastHeader == nil:
		return queueDropped("no pending state to apply the queue to")
	case to.nPage < from.nPage || to.salt != from.salt || to.mx <= from.mx:
		return queueDropped("the queue does not continue the position")
	}
	ps := to.pageSize
	frameLen := walFrameHdrLen + ps
	if int64(len(q.Frames)) != int64(to.mx-from.mx)*int64(frameLen) {
		return queueDropped("the queued frames are not the header's")
	}
	oldSize, size := int64(from.nPage)*int64(ps), int64(to.nPage)*int64(ps)
	cs := int64(db.chunkSize())
	p := db.pending
	// Before anything changes: every page the queue wrote up to the new
	// size lies in a chunk copy held whole (or, for the last chunk, whole
	// up to the old size) or in a chunk wholly past the old end (made of
	// the queue's frames alone), and every page the database grew by was
	// written (else it reads from the file).
	grown := int(to.nPage - from.nPage)
	var seen map[uint32]bool
	if grown > 0 {
		seen = make(map[uint32]bool, grown)
	}
	for f := range to.mx - from.mx {
		pg := binary.BigEndian.Uint32(q.Frames[int(f)*frameLen:])
		if pg == 0 || pg > to.nPage {
			continue // validated below; past the commit size, not part of it
		}
		c := uint32(int64(pg-1) * int64(ps) / cs)
		if int64(c)*cs >= oldSize {
			// New: made of frames alone (a copy left from before a
			// shrink is replaced).
		} else if buf, ok := p.chunks[c]; !ok || p.spilled[c] != (spillRef{}) ||
			len(buf) != manifest.ChunkLen(int(c), size, uint32(cs)) &&
				len(buf) != manifest.ChunkLen(int(c), oldSize, uint32(cs)) {
			return queueDropped("a queued page's chunk is not held whole")
		}
		if pg > from.nPage {
			seen[pg] = true
		}
	}
	if len(seen) != grown {
		return queueDropped("the database grew by pages the queue did not write")
	}
	if !db.walHoldsQueue(st, from, to, q.Frames) {
		db.abortWALSlicedLocked()
		db.wal = nil // the next capture rescans
		return queueDropped("the -wal does not hold the queued frames (cut or written behind SQLite's back)")
	}
	if _, err := st.extendFrom(q.Frames, to); err != nil {
		// st is unusable: the next capture rescans.
		db.abortWALSlicedLocked()
		db.wal = nil
		return err
	}
	var made map[uint32]bool // chunks past the old end, made afresh
	for f := range to.mx - from.mx {
		fr := q.Frames[int(f)*frameLen : int(f+1)*frameLen]
		pg := binary.BigEndian.Uint32(fr)
		if pg > to.nPage || st.frames[pg] != from.mx+1+f {
			continue // past the commit size, or a later frame has the page
		}
		off := int64(pg-1) * int64(ps)
		c := uint32(off / cs)
		buf := p.chunks[c]
		n := manifest.ChunkLen(int(c), size, uint32(cs))
		if int64(c)*cs >= oldSize && !made[c] {
			// A chunk past the old end: every page of it is in the queue.
			if made == nil {
				made = map[uint32]bool{}
			}
			made[c] = true
			db.pendingBytes += int64(n - len(buf))
			buf = make([]byte, n)
			p.chunks[c] = buf
		} else if len(buf) < n {
			// The last chunk grew: its new pages are all in the queue.
			db.pendingBytes += int64(n - len(buf))
			buf = append(buf, make([]byte, n-len(buf))...)
			p.chunks[c] = buf
		}
		copy(buf[off-int64(c)*cs:], fr[walFrameHdrLen:])
	}
	header := db.lastHeader
	if c0, ok := p.chunks[0]; ok {
		header = slices.Clone(c0[:HeaderLen])
	}
	// Numbered when its last commit was queued, as a capture at that
	// commit would have (another process's later commit, captured at
	// once, is numbered after it), not when the queue is taken.
	var at uint64
	if !q.Last.IsZero() && q.Last.UnixNano() > 0 {
		at = uint64(q.Last.UnixNano())
	}
	seq := db.nextSeq(at)
	vid := identity(st.ino, to.id(), header)
	p.length, p.seq, p.versionID, p.commitTime = size, seq, vid, q.Last
	db.lastID, db.lastLen, db.lastSeq, db.lastHeader = vid, size, seq, header
	db.verified = true
	return nil
}

// walHoldsQueue compares the queued frames, and the remembered last frame
// before them when it was kept, with the -wal's bytes. SQLite appends each
// transaction's frames right after the last commit's, so a -wal cut behind
// its back and then written past has a hole (zeros) that ends at a commit:
// in these frames, when the cut came after the remembered position. The
// WAL header is read after the frames: when its salts are no longer the
// queue's, SQLite restarted the WAL (every frame was in the database file
// by then) and may have written over the frames; nothing reads them again,
// and the queue is applied from memory. So it is without a -wal open (the
// last connection closed: SQLite checkpointed it). db.mu is held.
func (db *DB) walHoldsQueue(st *walState, from, to walPos, frames []byte) bool {
	f := db.walq.OpenWAL()
	if f == nil {
		return true
	}
	defer f.Close()
	ps := to.pageSize
	off := frameOffset(from.mx+1, ps)
	kept := st.read.frame(from.mx)
	if from.mx == 0 {
		kept = nil
	}
	if kept != nil {
		off -= int64(len(kept))
	}
	bp := frameScratch.Get().(*[]byte)
	defer frameScratch.Put(bp)
	if cap(*bp) < walCompareBatch {
		*bp = make([]byte, walCompareBatch)
	}
	same := true
	for _, want := range [][]byte{kept, frames} {
		for len(want) > 0 && same {
			b := (*bp)[:min(len(want), walCompareBatch)]
			n, _ := f.ReadAt(b, off)
			same = n == len(b) && bytes.Equal(b, want[:len(b)])
			want, off = want[len(b):], off+int64(len(b))
		}
	}
	h := make([]byte, walHdrLen)
	if n, _ := f.ReadAt(h, 0); n != len(h) || [8]byte(h[16:24]) != to.salt {
		return true // restarted (or emptied) since: the frames are gone
	}
	return same
}

// walCompareBatch is how many bytes of the -wal walHoldsQueue reads at once.
const walCompareBatch = 64 << 10

// enableWALQueueLocked lets the VFS queue the commits that continue st,
// the state a WAL capture just left (pos: its wal-index header), for the
// chunks the pending set holds whole, those of dirty first. db.mu is held.
func (db *DB) enableWALQueueLocked(st *walState, pos []byte, dirty []uint32) {
	p := db.pending
	if db.walq == nil || p == nil || db.wal != st || db.lastID == nil || db.sliced != nil || db.walCopy.run != nil ||
		st.heapSession != 0 || len(p.spilled) > 0 || db.lastHeader == nil {
		return
	}
	size := int64(st.pos.nPage) * int64(st.pos.pageSize)
	cs := db.chunkSize()
	whole := func(c uint32) bool {
		buf, ok := p.chunks[c]
		return ok && len(buf) == manifest.ChunkLen(int(c), size, uint32(cs))
	}
	chunks := make([]uint32, 0, min(len(p.chunks), maxQueueChunks))
	for _, c := range dirty {
		if len(chunks) < maxQueueChunks && whole(c) {
			chunks = append(chunks, c)
		}
	}
	for c := range p.chunks {
		if len(chunks) < maxQueueChunks && whole(c) && !slices.Contains(chunks, c) {
			chunks = append(chunks, c)
		}
	}
	db.walq.Enable(pos, chunks, cs)
}

// DBID returns the id of the database of handle h (0: none, or not
// replicated): the VFS's connections of one database share its queue of
// WAL commits.
func (m *Manager) DBID(h uint64) uint64 {
	db := m.lookup(h)
	if db == nil || db.disabled != nil {
		return 0
	}
	return db.id
}

// WALQueued schedules a build of the database of handle h, whose queue of
// WAL commits received its first commit since it was taken, or, with
// drain, applies the queue in the background (it grew large).
func (m *Manager) WALQueued(h uint64, drain bool) {
	db := m.lookup(h)
	if db == nil || db.disabled != nil {
		return
	}
	if !drain {
		m.schedule(db)
	} else if !db.draining.Swap(true) {
		go db.drainWALQueue()
	}
}
