// WAL mode with the wal-index in heap memory (docs/ARCHITECTURE.md, "WAL
// replication").
//
// A connection that opens the WAL in exclusive locking mode (or over a VFS
// without shared memory) keeps the wal-index in heap memory: the VFS sees
// no wal-index header and no WAL write lock. It calls Capture with a
// WALHeapCommit event at COMMIT_PHASETWO of each transaction instead, with
// the database's EXCLUSIVE lock held, which the connection keeps as long as
// its WAL is open: no one else can append, checkpoint or restart.
//
// The position is then read from the -wal itself, as SQLite's recovery
// reads it: from the remembered position (same salts: the same generation,
// whose frames up to it are immutable, checked again) or else from the WAL
// header, every frame is validated (salts, cumulative checksums) until the
// first that does not, and the position is the last commit frame among
// them. From there the capture is wal.go's:
//
//   - incremental from the remembered position (same generation);
//   - a new generation in the same session (Event.WALSession: the same
//     connection held EXCLUSIVE with the same -wal open since it captured
//     the remembered position): SQLite restarts a WAL only when every
//     frame is in the database file, so the file is the remembered state
//     and the new generation's frames are applied to it;
//   - otherwise a rescan of the whole overlay.
//
// A transaction that committed no frame (BEGIN IMMEDIATE; COMMIT) changes
// nothing. A -wal with no committed frame at all (the frames have not
// reached the file) skips the capture (ErrWALShort): the next one rescans.

package tracker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// walHeapCapture runs a WALHeapCommit event (see the top of this file).
func (db *DB) walHeapCapture(src Source, ev Event) error {
	db.waitSliced(true) // a copy of the raw file is not a state in WAL mode
	db.mu.Lock()
	st := db.wal
	db.wal = nil // set again when this capture succeeds
	db.mu.Unlock()
	inSession := st != nil && ev.WALSession != 0 && st.heapSession == ev.WALSession
	wal, err := os.Open(ev.WALPath)
	if err != nil {
		return fmt.Errorf("open WAL: %w", err)
	}
	defer wal.Close()
	if fi, err := wal.Stat(); err != nil {
		return fmt.Errorf("stat WAL: %w", err)
	} else if st, ok := fi.Sys().(*syscall.Stat_t); ok && ev.WALIno != 0 && st.Ino != ev.WALIno {
		return fmt.Errorf("%s is not the -wal SQLite opened (inode %d, not %d): %w", ev.WALPath, st.Ino, ev.WALIno, errWALChain)
	}
	start, err := walHeapStart(wal)
	if errors.Is(err, ErrWALShort) {
		// No frame (emptied by a TRUNCATE checkpoint, or never written).
		return db.walHeapNoFrame(src, st, inSession, ev)
	}
	if err != nil {
		return err
	}
	// The same generation as the remembered position, whose last frame is
	// still there; or a restart by this session.
	sameGen := st != nil && st.pos.salt == start.salt && st.pos.pageSize == start.pageSize &&
		st.pos.bigEnd == start.bigEnd
	if sameGen && st.pos.mx > 0 {
		if sameGen, err = walFrameIsKept(wal, st.pos, st.read.frame(st.pos.mx)); err != nil {
			return err
		}
	}
	restarted := inSession && st.pos.salt != start.salt
	from := start
	if sameGen && st.pos.mx > 0 {
		from = st.pos
	}
	now, forged, err := walLastCommit(wal, from)
	if err != nil {
		return err
	}
	if forged && from.mx == 0 {
		// SQLite writes a generation's header with its first frame: a
		// first frame in the file that fails the header's salts or
		// checksums was not written under this header (one rewritten
		// behind SQLite's back). Whatever SQLite committed since cannot
		// be read: fail, so that the next capture rescans.
		return fmt.Errorf("%s: the first frame does not belong to the WAL header: %w", ev.WALPath, errWALChain)
	}
	if now.mx == 0 {
		return db.walHeapNoFrame(src, st, sameGen || restarted || inSession, ev)
	}
	var pages []uint32
	switch {
	case sameGen && st.pos.mx > 0:
		if now.same(st.pos) {
			db.setWAL(st) // a transaction that wrote no frame
			return nil
		}
		pages, err = st.extend(wal, now)
	case sameGen || restarted:
		// The remembered generation was empty, or this session restarted
		// the WAL: the file is the remembered state.
		st = &walState{pos: start, frames: map[uint32]uint32{}}
		pages, err = st.extend(wal, now)
	default:
		err = errWALChain
	}
	if err != nil {
		db.log.Debug("heap-memory WAL capture cannot continue from the remembered position; rescanning", "err", err)
		if err := db.walRescan(src, wal, ev.WALPath, now, ev.Ino); err != nil {
			return err
		}
		db.mu.Lock()
		if db.wal != nil {
			db.wal.heapSession = ev.WALSession
		}
		db.mu.Unlock()
		return nil
	}
	st.heapSession = ev.WALSession
	dirty, extents := walDirtyChunks(pages, now.pageSize, int64(db.chunkSize()))
	view := &walView{file: src, wal: wal, st: st}
	size, _ := view.Size()
	cev := Event{Kind: WALCommit, Dirty: dirty, Extents: extents, Ino: ev.Ino, PostXattr: now.id()}
	if err := db.copyDirty(view, cev, size, nil, nil, nil, nil); err != nil {
		return err
	}
	db.setWAL(st)
	return nil
}

// walHeapNoFrame captures a commit after which the WAL holds no committed
// frame: the state is the database file. It is the remembered state when
// st was captured in this session (or is this generation's empty start);
// else the file is captured, unless it is the state last captured and in
// rollback mode (a header that says WAL does not prove that).
func (db *DB) walHeapNoFrame(src Source, st *walState, remembered bool, ev Event) error {
	if remembered {
		db.setWAL(st)
		return nil
	}
	xattr, header, err := readState(src)
	if err != nil {
		return err
	}
	cur := identity(ev.Ino, xattr, header)
	db.mu.Lock()
	// A commit in WAL mode that does not write page 1 leaves the header
	// (its change counter too) as it was, and one that bypasses the VFS
	// leaves the version xattr: the identity of a file whose header says
	// WAL proves nothing.
	known := db.lastID != nil && bytes.Equal(db.lastID, cur) && !IsWAL(header)
	db.mu.Unlock()
	if !known {
		unlock, err := db.lockForCapture()
		if err != nil {
			return err
		}
		defer unlock()
		walRescanned.Add(1)
		if err := db.rescanLocked(src, ev.Ino, xattr, seqFromXattr(xattr)); err != nil {
			return err
		}
	}
	// The next frames start a generation from the file (no salts match
	// this empty position's).
	db.setWAL(&walState{frames: map[uint32]uint32{}, heapSession: ev.WALSession})
	return nil
}

// walHeapStart reads the WAL header and returns the start of its
// generation (no frame, the header's checksums as the chain's seed);
// ErrWALShort when the file holds no header.
func walHeapStart(wal *os.File) (walPos, error) {
	h := make([]byte, walHdrLen)
	if _, err := wal.ReadAt(h, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return walPos{}, fmt.Errorf("WAL header: %w", ErrWALShort)
		}
		return walPos{}, fmt.Errorf("read WAL header: %w", err)
	}
	be := binary.BigEndian
	hint := walPos{pageSize: int(be.Uint32(h[8:])), bigEnd: be.Uint32(h)&1 == 1}
	copy(hint.salt[:], h[16:24])
	return walGenerationStart(wal, hint) // validates magic, version, checksum
}

// frameScratch holds the buffers walFrameIsKept reads a frame into: a
// commit's capture needs one for a moment, and a buffer kept per database
// would cost every idle WAL database its size.
var frameScratch = sync.Pool{New: func() any { return new([]byte) }}

// walFrameIsKept reports whether frame pos.mx of the -wal is still the
// last frame of pos: its salts and checksums are pos's and, when the
// checksums before it are known, its page data still gives them (a -wal
// cut in the middle of that frame, then written past by SQLite, has a hole
// there). kept is the frame's bytes (header and page) as an earlier
// capture validated them, nil when not kept: when the -wal still holds
// exactly those bytes the frame is whole, with no checksum to compute.
func walFrameIsKept(wal io.ReaderAt, pos walPos, kept []byte) (bool, error) {
	n := walFrameHdrLen
	if pos.prevOK {
		n += pos.pageSize
	}
	bp := frameScratch.Get().(*[]byte)
	defer frameScratch.Put(bp)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	fr := (*bp)[:n]
	if _, err := wal.ReadAt(fr, frameOffset(pos.mx, pos.pageSize)); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, fmt.Errorf("read WAL frame %d: %w", pos.mx, err)
	}
	if len(kept) == n && bytes.Equal(fr, kept) {
		return true, nil
	}
	be := binary.BigEndian
	if [8]byte(fr[8:16]) != pos.salt || be.Uint32(fr[16:]) != pos.ck[0] || be.Uint32(fr[20:]) != pos.ck[1] {
		return false, nil
	}
	if !pos.prevOK {
		return true, nil
	}
	s1, s2 := walChecksum(fr[:8], pos.bigEnd, pos.prevCk[0], pos.prevCk[1])
	s1, s2 = walChecksum(fr[walFrameHdrLen:], pos.bigEnd, s1, s2)
	return [2]uint32{s1, s2} == pos.ck, nil
}

// walLastCommit validates the frames after from as SQLite's recovery does
// (page number, salts, checksum chain) up to the first that does not
// validate or is not in the file, and returns the position at the last
// commit frame among them (from itself when there is none). forged says
// that the frame right after from is in the file but does not validate.
func walLastCommit(wal *os.File, from walPos) (last walPos, forged bool, err error) {
	fi, err := wal.Stat()
	if err != nil {
		return walPos{}, false, fmt.Errorf("stat WAL: %w", err)
	}
	ps := from.pageSize
	frameLen := int64(walFrameHdrLen + ps)
	off := frameOffset(from.mx+1, ps)
	left := max(fi.Size()-off, 0) / frameLen
	buf := make([]byte, min(left, int64(max(walReadBatch/frameLen, 1)))*frameLen)
	be := binary.BigEndian
	last = from
	s1, s2 := from.ck[0], from.ck[1]
	for f := from.mx + 1; left > 0; {
		k := min(left, int64(len(buf))/frameLen)
		b := buf[:k*frameLen]
		n, err := wal.ReadAt(b, frameOffset(f, ps))
		if err != nil && !errors.Is(err, io.EOF) {
			return walPos{}, false, fmt.Errorf("read WAL frames from %d: %w", f, err)
		}
		k = int64(n) / frameLen
		for i := range k {
			fr := b[i*frameLen : (i+1)*frameLen]
			first := f+uint32(i) == from.mx+1
			if be.Uint32(fr) == 0 || [8]byte(fr[8:16]) != from.salt {
				return last, first, nil
			}
			prev := [2]uint32{s1, s2}
			s1, s2 = walChecksum(fr[:8], from.bigEnd, s1, s2)
			s1, s2 = walChecksum(fr[walFrameHdrLen:], from.bigEnd, s1, s2)
			if s1 != be.Uint32(fr[16:]) || s2 != be.Uint32(fr[20:]) {
				return last, first, nil
			}
			if size := be.Uint32(fr[4:]); size != 0 {
				last.mx, last.nPage, last.ck = f+uint32(i), size, [2]uint32{s1, s2}
				last.prevCk, last.prevOK = prev, true
			}
		}
		if err != nil || k == 0 {
			return last, false, nil // the file ended
		}
		f += uint32(k)
		left -= k
	}
	return last, false, nil
}
