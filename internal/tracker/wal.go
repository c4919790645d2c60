// WAL-mode capture (docs/ARCHITECTURE.md, "WAL replication").
//
// The VFS calls Capture with a WALCommit event before it releases the WAL
// write lock, when the hold changed the wal-index header. The committed
// state at the header's mxFrame M is the database file overlaid with, for
// every page up to the commit size, its latest frame at or before M in the
// current WAL generation (same salts, unbroken checksum chain). The tracker
// remembers the position it last captured (salts, M, the last frame's
// checksums) and a map page -> latest frame; every frame it uses is read
// back from the -wal and validated, never taken from the VFS.
//
//   - incremental: the header's salts are the remembered ones and M did not
//     go back: the frames after the remembered position (this commit's, and
//     any another writer committed meanwhile) are validated, join the map,
//     and the chunks holding their pages are copied through the overlay
//     (walView) as a rollback-mode commit's dirty chunks are.
//   - witnessed restart: the header at the lock's grant is the remembered
//     position and the salts changed during the hold: SQLite restarts the
//     WAL only when every frame is in the database file, so the file is the
//     remembered state and the new generation's frames are applied to it.
//   - otherwise (a restart or truncation not witnessed, a broken chain, a
//     position never seen): the whole overlay is copied (a rescan, under
//     the write lock: the file is not copied in slices, as the frames it
//     is overlaid with are only stable under that lock).
//
// A hold that restarted or emptied the WAL without committing captures
// nothing; the new generation starts empty when the old one was the
// remembered position. Checkpoints write the database file outside this
// path (the VFS does not track those writes): they change no committed
// state.

package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

const (
	walHdrLen       = 32 // WAL file header
	walFrameHdrLen  = 24 // frame header
	walIndexHdrLen  = 48 // one copy of the wal-index header
	walMagic        = 0x377f0682
	walVersion      = 3007000 // WAL and wal-index format version
	walReadBatch    = 1 << 20 // bytes of frames read at once
	walIdentityMark = "wal:"  // prefix of a WAL position in a version id
)

// walPos is a position in a WAL: the wal-index header fields the tracker
// compares and composes from.
type walPos struct {
	salt     [8]byte // salt-1, salt-2 as in the WAL (big-endian bytes)
	mx       uint32  // last valid frame (mxFrame)
	nPage    uint32  // database size in pages after frame mx
	ck       [2]uint32
	pageSize int
	bigEnd   bool // checksums read the WAL as big-endian words
	// prevCk, when prevOK, is the chain's checksums before frame mx, as
	// read from the -wal (walheap.go checks frame mx whole again).
	prevCk [2]uint32
	prevOK bool
}

// same reports whether a and b are one position of one generation.
func (a walPos) same(b walPos) bool {
	return a.salt == b.salt && a.mx == b.mx && a.ck == b.ck && a.pageSize == b.pageSize
}

// id is the WAL position as it is recorded in version ids.
func (a walPos) id() []byte {
	b := append([]byte(walIdentityMark), a.salt[:]...)
	b = binary.BigEndian.AppendUint32(b, a.mx)
	b = binary.BigEndian.AppendUint32(b, a.ck[0])
	return binary.BigEndian.AppendUint32(b, a.ck[1])
}

var nativeBigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

// walChecksum continues SQLite's WAL checksum (walChecksumBytes) over b.
// Two loops with the byte order spelled out: a call per word through
// binary.ByteOrder (an interface) made the checksum most of a small
// commit's capture.
func walChecksum(b []byte, bigEnd bool, s1, s2 uint32) (uint32, uint32) {
	if bigEnd {
		be := binary.BigEndian
		for ; len(b) >= 8; b = b[8:] {
			s1 += be.Uint32(b[0:4]) + s2
			s2 += be.Uint32(b[4:8]) + s1
		}
		return s1, s2
	}
	le := binary.LittleEndian
	for ; len(b) >= 8; b = b[8:] {
		s1 += le.Uint32(b[0:4]) + s2
		s2 += le.Uint32(b[4:8]) + s1
	}
	return s1, s2
}

// parseWALIndexHeader decodes one copy of the wal-index header (native
// byte order) and checks it as SQLite does.
func parseWALIndexHeader(h []byte) (walPos, bool) {
	var p walPos
	if len(h) != walIndexHdrLen || h[12] != 1 {
		return p, false
	}
	ne := binary.NativeEndian
	s1, s2 := walChecksum(h[:40], nativeBigEndian, 0, 0)
	if ne.Uint32(h[0:]) != walVersion || s1 != ne.Uint32(h[40:]) || s2 != ne.Uint32(h[44:]) {
		return p, false
	}
	sz := int(ne.Uint16(h[14:]))
	p.pageSize = (sz & 0xfe00) | (sz&1)<<16
	p.bigEnd = h[13] != 0
	p.mx = ne.Uint32(h[16:])
	p.nPage = ne.Uint32(h[20:])
	p.ck = [2]uint32{ne.Uint32(h[24:]), ne.Uint32(h[28:])}
	copy(p.salt[:], h[32:40])
	if p.mx == 0 && p.pageSize == 0 {
		return p, true // recovered from an empty or missing -wal
	}
	if p.pageSize < 512 || p.pageSize > 65536 || p.pageSize&(p.pageSize-1) != 0 {
		return p, false
	}
	return p, true
}

// walState is what the tracker remembers of a database in WAL mode.
type walState struct {
	pos    walPos
	frames map[uint32]uint32 // page number -> latest frame at or before pos.mx
	// heapSession: the heap-memory WAL session (Event.WALSession) whose
	// capture left this state, 0 for others (walheap.go).
	heapSession uint64
	// read holds the frames the last extend read and validated (walread.go):
	// the view takes their pages from memory, not from the -wal again.
	read frameBuf
	// ino is the database file's inode at the capture (its identity).
	ino uint64
}

// errWALChain says that the -wal does not hold the frames the wal-index
// header announces as a valid chain from the remembered position.
var errWALChain = errors.New("WAL frames do not continue the remembered position")

// ErrWALShort says that the -wal ends before the frames the wal-index
// header announces. SQLite writes every frame before it publishes them, so
// they were written through a layer above the VFS that has not passed them
// on yet (SQLite's crash-simulation VFS holds writes past the last sync of
// the file), or the file was truncated behind SQLite's back. The capture is
// skipped, not failed: the next one rescans.
var ErrWALShort = errors.New("the WAL is shorter than the frames the wal-index header announces")

func frameOffset(frame uint32, pageSize int) int64 {
	return walHdrLen + int64(frame-1)*int64(walFrameHdrLen+pageSize)
}

// walGenerationStart reads and validates the WAL header of the generation
// now belongs to; it returns the checksum seed of its first frame.
func walGenerationStart(wal io.ReaderAt, now walPos) (walPos, error) {
	h := make([]byte, walHdrLen)
	if _, err := wal.ReadAt(h, 0); err != nil {
		return walPos{}, fmt.Errorf("read WAL header: %w", err)
	}
	be := binary.BigEndian
	magic := be.Uint32(h)
	if magic&^1 != walMagic || be.Uint32(h[4:]) != walVersion || int(be.Uint32(h[8:])) != now.pageSize {
		return walPos{}, fmt.Errorf("WAL header: %w", errWALChain)
	}
	start := walPos{pageSize: now.pageSize, bigEnd: magic&1 == 1}
	copy(start.salt[:], h[16:24])
	s1, s2 := walChecksum(h[:24], start.bigEnd, 0, 0)
	if start.salt != now.salt || start.bigEnd != now.bigEnd || s1 != be.Uint32(h[24:]) || s2 != be.Uint32(h[28:]) {
		return walPos{}, fmt.Errorf("WAL header of another generation: %w", errWALChain)
	}
	start.ck = [2]uint32{s1, s2}
	return start, nil
}

// extend validates the frames after st.pos up to now.mx, adds them to
// st.frames and returns the pages they hold. st is left unusable on error.
func (st *walState) extend(wal io.ReaderAt, now walPos) ([]uint32, error) {
	ps := now.pageSize
	frameLen := walFrameHdrLen + ps
	r := frameRun{s1: st.pos.ck[0], s2: st.pos.ck[1]}
	var pages []uint32
	want := int64(now.mx-min(now.mx, st.pos.mx)) * int64(frameLen)
	buf := st.read.reset(max(frameLen, int(min(want, int64(walReadBatch/frameLen*frameLen)))))
	for f := st.pos.mx + 1; f <= now.mx; {
		k := min(uint32(len(buf)/frameLen), now.mx-f+1)
		b := buf[:int(k)*frameLen]
		st.read.forget()
		countFramesRead(wal, frameOffset(f, ps), len(b), k)
		if _, err := wal.ReadAt(b, frameOffset(f, ps)); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = ErrWALShort
			}
			return nil, fmt.Errorf("read WAL frames %d-%d: %w", f, f+k-1, err)
		}
		var err error
		if pages, err = st.validate(b, f, now, &r, pages); err != nil {
			return nil, err
		}
		st.read.hold(f, k, frameLen)
		f += k
	}
	if err := st.finish(now, &r); err != nil {
		return nil, err
	}
	return pages, nil
}

// extendFrom is extend for frames b already in memory (all those after
// st.pos up to now.mx): they are validated where they are, and only the
// last is kept (walFrameIsKept compares with it).
func (st *walState) extendFrom(b []byte, now walPos) ([]uint32, error) {
	frameLen := walFrameHdrLen + now.pageSize
	if now.mx <= st.pos.mx || int64(len(b)) != int64(now.mx-st.pos.mx)*int64(frameLen) {
		return nil, fmt.Errorf("%d bytes are not frames %d-%d: %w", len(b), st.pos.mx+1, now.mx, errWALChain)
	}
	st.read.forget()
	r := frameRun{s1: st.pos.ck[0], s2: st.pos.ck[1]}
	pages, err := st.validate(b, st.pos.mx+1, now, &r, nil)
	if err != nil {
		return nil, err
	}
	if err := st.finish(now, &r); err != nil {
		return nil, err
	}
	copy(st.read.reset(frameLen), b[len(b)-frameLen:])
	st.read.hold(now.mx, 1, frameLen)
	return pages, nil
}

// frameRun is the state of a validation of consecutive frames.
type frameRun struct {
	s1, s2     uint32    // the checksums after the last frame validated
	prev       [2]uint32 // and before it
	commitSize uint32    // its commit size (0: not a commit frame)
	n          int       // frames validated
}

// validate checks the whole frames b, the first of which is frame f, as
// SQLite's recovery does (page number, salts, checksum chain), adds them
// to st.frames and appends their pages to pages.
func (st *walState) validate(b []byte, f uint32, now walPos, r *frameRun, pages []uint32) ([]uint32, error) {
	frameLen := walFrameHdrLen + now.pageSize
	be := binary.BigEndian
	for i := uint32(0); int(i+1)*frameLen <= len(b); i++ {
		fr := b[int(i)*frameLen : int(i+1)*frameLen]
		pg := be.Uint32(fr)
		if pg == 0 || [8]byte(fr[8:16]) != now.salt {
			return nil, fmt.Errorf("frame %d: %w", f+i, errWALChain)
		}
		p1, p2 := r.s1, r.s2
		r.s1, r.s2 = walChecksum(fr[:8], now.bigEnd, r.s1, r.s2)
		r.s1, r.s2 = walChecksum(fr[walFrameHdrLen:], now.bigEnd, r.s1, r.s2)
		if r.s1 != be.Uint32(fr[16:]) || r.s2 != be.Uint32(fr[20:]) {
			return nil, fmt.Errorf("frame %d checksum: %w", f+i, errWALChain)
		}
		st.frames[pg] = f + i
		pages = append(pages, pg)
		r.commitSize = be.Uint32(fr[4:])
		r.prev = [2]uint32{p1, p2}
		r.n++
	}
	return pages, nil
}

// finish checks that the frames validated end with now's commit, and
// makes now the position of st.
func (st *walState) finish(now walPos, r *frameRun) error {
	if now.mx > st.pos.mx && (r.commitSize != now.nPage || [2]uint32{r.s1, r.s2} != now.ck) {
		return fmt.Errorf("last frame %d is not the header's commit: %w", now.mx, errWALChain)
	}
	if now.mx > st.pos.mx {
		now.prevCk, now.prevOK = r.prev, true
	} else {
		now.prevCk, now.prevOK = st.pos.prevCk, st.pos.prevOK && now.same(st.pos)
	}
	st.pos = now
	return nil
}

// walView is the committed state at a WAL position: the database file
// overlaid with the frames of st, commit size pages long.
type walView struct {
	file Source
	wal  io.ReaderAt
	st   *walState
}

func (v *walView) Size() (int64, error) {
	return int64(v.st.pos.nPage) * int64(v.st.pos.pageSize), nil
}

func (v *walView) Xattr() ([]byte, error) { return v.st.pos.id(), nil }

// ReadAt reads pages from their latest frame, else from the file; runs of
// file pages are read at once. Bytes past the commit size read as zeros.
func (v *walView) ReadAt(p []byte, off int64) error {
	ps := int64(v.st.pos.pageSize)
	size, _ := v.Size()
	for len(p) > 0 {
		if off >= size {
			clear(p)
			return nil
		}
		n := min(int64(len(p)), size-off)
		pg := uint32(off/ps) + 1
		in := off % ps
		if f, ok := v.st.frames[pg]; ok {
			n = min(n, ps-in)
			if page := v.st.read.page(f); page != nil {
				copy(p[:n], page[in:])
			} else if _, err := v.wal.ReadAt(p[:n], frameOffset(f, int(ps))+walFrameHdrLen+in); err != nil {
				return fmt.Errorf("read page %d from WAL frame %d: %w", pg, f, err)
			}
		} else {
			// Extend over the following pages that have no frame.
			run := ps - in
			for run < n {
				if _, ok := v.st.frames[uint32((off+run)/ps)+1]; ok {
					break
				}
				run += ps
			}
			n = min(n, run)
			if err := v.file.ReadAt(p[:n], off); err != nil {
				return err
			}
		}
		p, off = p[n:], off+n
	}
	return nil
}

// setWAL replaces the remembered WAL state.
func (db *DB) setWAL(st *walState) {
	db.mu.Lock()
	if st == nil {
		db.abortWALSlicedLocked() // the copied position is no longer followed
	}
	db.wal = st
	db.mu.Unlock()
}

// walCheck is a Check of a database whose header says WAL mode: a read
// transaction proves nothing there (commits do not go through the file's
// lock), and a state not known is rescanned at the next commit.
func (db *DB) walCheck() error {
	db.mu.Lock()
	known := db.wal != nil
	db.mu.Unlock()
	if !known {
		db.log.Debug("WAL database not captured yet in this process; the next commit through the VFS rescans it")
	}
	return nil
}

// walCapture runs a WALCommit event (see the top of this file).
func (db *DB) walCapture(src Source, ev Event) (err error) {
	now, ok := parseWALIndexHeader(ev.WALNow)
	if !ok {
		// The header was invalidated under the write lock so that the next
		// transaction runs recovery (a superlock zeroes it; a writer that
		// died between the two copies leaves them differing). SQLite
		// publishes a commit with a valid header, so nothing was committed
		// in this hold; recovery runs under the write lock and its release,
		// from a position not remembered, is adopted or rescanned.
		db.setWAL(nil)
		db.log.Debug("wal-index header invalid at the release of the WAL write lock (recovery pending); the remembered position is dropped")
		return nil
	}
	prior, priorOK := parseWALIndexHeader(ev.WALPrior)
	db.waitSliced(true)  // a copy of the raw file is not a state in WAL mode
	db.walCopy.mu.Lock() // no sliced WAL copy ends during the capture (walsliced.go)
	defer db.walCopy.mu.Unlock()
	db.mu.Lock()
	st := db.wal
	db.wal = nil // set again when this capture succeeds
	db.mu.Unlock()
	if st != nil && st.heapSession != 0 {
		// Left by a heap-memory session, whose WAL was closed since (a
		// wal-index is mapped now): anyone may have written between. Its
		// empty position (no salts, no page size) would pass for the
		// header of a wal-index recovered from no -wal.
		st = nil
	}
	// The hold started from the remembered position and changed the
	// generation (a restart: SQLite restarts only a WAL whose every frame
	// is in the database file), or the remembered generation was empty:
	// the file is the remembered state.
	fileIsState := st != nil && priorOK && prior.same(st.pos) && (prior.salt != now.salt || st.pos.mx == 0)
	if now.mx == 0 {
		// Restarted or truncated without a commit: the state did not change.
		if fileIsState || (st != nil && st.pos.salt == now.salt && st.pos.mx == 0) {
			db.setWAL(&walState{pos: now, frames: map[uint32]uint32{}})
		}
		return nil
	}
	wal, closeWAL, err := openWAL(ev)
	if err != nil {
		return walOpenError(ev.WALPath, err)
	}
	defer closeWAL()
	if (st == nil || fileIsState) && db.stopWALSliced() {
		// The abandoned sliced copy took the remembered state with it.
		st, fileIsState = nil, false
	}
	if st == nil && priorOK {
		// Not remembered: the spool's manifest may be the starting
		// position (waladopt.go).
		if st = db.walAdopt(src, wal, prior, now, ev.Ino); st != nil {
			fileIsState = prior.salt != now.salt
		}
	}
	var pages []uint32
	switch {
	case st != nil && st.pos.salt == now.salt && st.pos.mx > 0 && now.mx >= st.pos.mx && st.pos.pageSize == now.pageSize:
		// The remembered last frame must still be whole: a -wal cut
		// inside it and written past has a hole there (walheap.go).
		var whole bool
		if whole, err = walFrameIsKept(wal, st.pos, st.read.frame(st.pos.mx)); err == nil && !whole {
			err = fmt.Errorf("frame %d changed: %w", st.pos.mx, errWALChain)
		}
		if err == nil {
			pages, err = st.extend(wal, now)
		}
	case fileIsState || (st != nil && st.pos.mx == 0 && st.pos.salt == now.salt):
		// From the start of the generation: frames of this generation
		// another process checkpointed meanwhile are in the file and in
		// the WAL alike.
		var start walPos
		if start, err = walGenerationStart(wal, now); err == nil {
			st = &walState{pos: start, frames: map[uint32]uint32{}}
			pages, err = st.extend(wal, now)
		}
	default:
		db.stopWALSliced()
		return db.walRescan(src, wal, ev.WALPath, now, ev.Ino)
	}
	if err != nil {
		db.log.Debug("WAL capture cannot continue from the remembered position; rescanning", "err", err)
		db.stopWALSliced()
		return db.walRescan(src, wal, ev.WALPath, now, ev.Ino)
	}
	dirty, extents := walDirtyChunks(pages, now.pageSize, int64(db.chunkSize()))
	view := &walView{file: src, wal: wal, st: st}
	size, _ := view.Size()
	cev := Event{Kind: WALCommit, Dirty: dirty, Extents: extents, Ino: ev.Ino, PostXattr: now.id()}
	err = db.copyDirty(view, cev, size, nil, nil, nil, nil)
	st.read.release()
	if err != nil {
		return err
	}
	st.ino = ev.Ino
	db.mu.Lock()
	db.wal = st
	// The commits that continue this position may be queued by the VFS
	// (walqueue.go).
	db.enableWALQueueLocked(st, ev.WALNow, dirty)
	db.mu.Unlock()
	return nil
}

// walDirtyChunks returns the chunks holding pages, in order, and for each
// the byte range of it those pages cover (Event.Extents: a pending copy of
// the chunk from an earlier capture is refreshed in that range only).
func walDirtyChunks(pages []uint32, pageSize int, cs int64) (dirty, extents []uint32) {
	ranges := map[uint32][2]uint32{}
	for _, pg := range pages {
		off := int64(pg-1) * int64(pageSize)
		c := uint32(off / cs)
		lo, hi := uint32(off%cs), uint32(off%cs+int64(pageSize))
		if r, ok := ranges[c]; ok {
			lo, hi = min(lo, r[0]), max(hi, r[1])
		}
		ranges[c] = [2]uint32{lo, hi}
	}
	for c := range ranges {
		dirty = append(dirty, c)
	}
	slices.Sort(dirty)
	for _, c := range dirty {
		extents = append(extents, ranges[c][0], ranges[c][1])
	}
	return dirty, extents
}

// walRescan copies the whole state at now: the file overlaid with every
// validated frame of the current generation. walPath names the -wal, which
// a copy after the capture opens for itself (walsliced.go).
func (db *DB) walRescan(src Source, wal io.ReaderAt, walPath string, now walPos, ino uint64) error {
	walRescanned.Add(1)
	start, err := walGenerationStart(wal, now)
	if err != nil {
		return err
	}
	st := &walState{pos: start, frames: map[uint32]uint32{}}
	if _, err := st.extend(wal, now); err != nil {
		return err
	}
	unlock, err := db.lockForCapture()
	if err != nil {
		return err
	}
	if db.startWALSliced(src, wal, walPath, st, ino, unlock) {
		return nil // copied after the capture (walsliced.go)
	}
	defer unlock()
	err = db.rescanLocked(&walView{file: src, wal: wal, st: st}, ino, now.id(), 0)
	st.read.release()
	if err != nil {
		return err
	}
	db.setWAL(st)
	return nil
}
