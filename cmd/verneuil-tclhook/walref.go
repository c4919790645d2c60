//go:build cgo && verneuil_extern

package main

// The reference state of a WAL-mode commit, for the per-commit check
// (check.go). It is a second implementation, written from SQLite's file
// format (wal.c: the WAL header, frame headers, cumulative checksums, the
// wal-index header) and sharing no code with internal/tracker, so that a bug
// in the tracker's WAL code cannot hide itself: the -wal is read with plain
// file reads, every frame up to the commit is validated here (salts and the
// checksum chain from the WAL header), and the state is the database file
// overlaid with the last copy of each page at or before the commit frame,
// cut to the commit frame's database size. That is what
// wal_checkpoint(TRUNCATE) would leave (docs/ARCHITECTURE.md, the
// byte-exactness invariant of WAL mode): bytes 18-19 stay 2 (WAL), as in
// the file. Nothing here locks, creates or writes a file.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

const (
	refWALHeaderLen  = 32
	refFrameHeadLen  = 24
	refWALIndexLen   = 48
	refWALMagicLE    = 0x377f0682 // checksums over little-endian words
	refWALMagicBE    = 0x377f0683 // checksums over big-endian words
	refWALVersion    = 3007000
	refPositionMark  = "wal:"
	refDBHeaderBytes = 100
)

// walPosition is a committed position in a WAL, as a version id records it.
type walPosition struct {
	salt [8]byte // salt-1, salt-2 as stored in the WAL (big-endian)
	mx   uint32  // the commit frame
	ck   [2]uint32
}

// id encodes the position as docs/FORMAT.md's version id holds it.
func (p walPosition) id() []byte {
	b := append([]byte(refPositionMark), p.salt[:]...)
	b = binary.BigEndian.AppendUint32(b, p.mx)
	b = binary.BigEndian.AppendUint32(b, p.ck[0])
	return binary.BigEndian.AppendUint32(b, p.ck[1])
}

func (p walPosition) String() string {
	return fmt.Sprintf("salts %x mxFrame %d checksums %08x %08x", p.salt, p.mx, p.ck[0], p.ck[1])
}

// cksum continues SQLite's WAL checksum over b (a multiple of 8 bytes).
func cksum(order binary.ByteOrder, b []byte, s [2]uint32) [2]uint32 {
	for i := 0; i+8 <= len(b); i += 8 {
		s[0] += order.Uint32(b[i:]) + s[1]
		s[1] += order.Uint32(b[i+4:]) + s[0]
	}
	return s
}

// nativeOrder is the byte order of the wal-index (shared memory).
var nativeOrder binary.ByteOrder = func() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 {
		return binary.BigEndian
	}
	return binary.LittleEndian
}()

// walIndexPosition decodes one copy of the wal-index header (native byte
// order: iVersion, unused, iChange, isInit, bigEndCksum, szPage, mxFrame,
// nPage, aFrameCksum[2], aSalt[2], aCksum[2]) and validates it as SQLite
// does. ok is false for a header SQLite would not trust.
func walIndexPosition(h []byte) (pos walPosition, nPage uint32, ok bool) {
	if len(h) != refWALIndexLen || h[12] != 1 || nativeOrder.Uint32(h[0:]) != refWALVersion {
		return pos, 0, false
	}
	if s := cksum(nativeOrder, h[:40], [2]uint32{}); s[0] != nativeOrder.Uint32(h[40:]) || s[1] != nativeOrder.Uint32(h[44:]) {
		return pos, 0, false
	}
	pos.mx = nativeOrder.Uint32(h[16:])
	nPage = nativeOrder.Uint32(h[20:])
	pos.ck = [2]uint32{nativeOrder.Uint32(h[24:]), nativeOrder.Uint32(h[28:])}
	copy(pos.salt[:], h[32:40]) // the salts are copied from the WAL header as bytes
	return pos, nPage, true
}

// walRef is the state at one commit: the database file overlaid with the
// frames of the -wal.
type walRef struct {
	db       interface{ ReadAt([]byte, int64) error }
	wal      io.ReaderAt
	pageSize int64
	nPage    uint32
	pos      walPosition
	frames   map[uint32]int64 // page number -> offset of its last copy's data in the -wal
}

// Size is the length of the state: the commit frame's database size.
func (r *walRef) Size() int64 { return int64(r.nPage) * r.pageSize }

// ReadAt fills p with the state's bytes from off (within Size).
func (r *walRef) ReadAt(p []byte, off int64) error {
	for len(p) > 0 {
		pg := uint32(off/r.pageSize) + 1
		in := off % r.pageSize
		n := min(int64(len(p)), r.pageSize-in)
		if at, ok := r.frames[pg]; ok {
			if _, err := r.wal.ReadAt(p[:n], at+in); err != nil {
				return fmt.Errorf("read page %d from the -wal: %w", pg, err)
			}
		} else if err := r.db.ReadAt(p[:n], off); err != nil {
			return fmt.Errorf("read page %d of the database file: %w", pg, err)
		}
		p, off = p[n:], off+n
	}
	return nil
}

var errNoCommit = errors.New("the -wal holds no committed frame")

// walScan is how far a walk of one -wal got: its header, and the chain of
// valid frames up to its last commit frame. A later walk of the same -wal
// (same inode, same header) continues from there instead of reading it
// all again: a test that commits thousands of times to a growing -wal
// (e_walauto) would otherwise read it whole at every commit.
type walScan struct {
	ino       uint64 // the -wal's inode (0: not known, never continued)
	hdr       [refWALHeaderLen]byte
	order     binary.ByteOrder
	ps        int64
	salt      [8]byte
	pos       walPosition      // the last commit frame (mx 0: none yet)
	nPage     uint32           // the database size that frame gives
	committed map[uint32]int64 // page -> its last copy at or before pos.mx, uncut
	// checked: the replica was compared with the state at pos, whole or
	// (continued) in the chunks changed since the last comparison, and
	// the checker's chunk cache holds what it compared (check.go).
	checked bool
	// changed: the pages this walk committed, when it continued a checked
	// walk (nil: it walked from the header, or the last one was unchecked).
	changed map[uint32]bool
}

// changedChunks returns, for a walk that continued a checked one, whether
// chunk i of chunkSize bytes holds a page the walk committed (the others
// hold the same bytes as at the last comparison); nil: every chunk is to
// be compared.
func (sc *walScan) changedChunks(chunkSize int64) func(i int) bool {
	if sc.changed == nil || chunkSize <= 0 {
		return nil
	}
	dirty := map[int64]bool{}
	for pg := range sc.changed {
		dirty[(int64(pg)-1)*sc.ps/chunkSize] = true
	}
	return func(i int) bool { return dirty[int64(i)] }
}

// composeWAL validates the -wal from its header and returns the state at
// its last commit frame at or before frame upTo (0: no limit): the frames
// are read in order, and the walk stops at the first frame whose salts or
// cumulative checksum do not validate, or past upTo. errNoCommit: no frame
// of the current generation commits.
func composeWAL(db interface{ ReadAt([]byte, int64) error }, wal io.ReaderAt, walSize int64, upTo uint32) (*walRef, error) {
	ref, _, err := composeWALFrom(db, wal, walSize, upTo, nil)
	return ref, err
}

// composeWALFrom is composeWAL continuing prev (a walk of the same -wal by
// inode, nil: none) when the -wal still has prev's header and prev's
// commit frame, and upTo is not before it; it also returns how far this
// walk got, for the next one.
func composeWALFrom(db interface{ ReadAt([]byte, int64) error }, wal io.ReaderAt, walSize int64, upTo uint32, prev *walScan) (*walRef, *walScan, error) {
	if walSize < refWALHeaderLen {
		return nil, nil, errNoCommit
	}
	var hdr [refWALHeaderLen]byte
	if _, err := wal.ReadAt(hdr[:], 0); err != nil {
		return nil, nil, fmt.Errorf("read the WAL header: %w", err)
	}
	sc, err := continueScan(wal, walSize, upTo, prev, hdr)
	if err != nil {
		return nil, nil, err
	}
	if sc == nil {
		if sc, err = newScan(hdr); err != nil {
			return nil, nil, err
		}
	}
	sc.walk(wal, walSize, upTo)
	if sc.pos.mx == 0 {
		return nil, nil, errNoCommit
	}
	frames := make(map[uint32]int64, len(sc.committed))
	for p, at := range sc.committed {
		if p <= sc.nPage { // cut to the commit's database size
			frames[p] = at
		}
	}
	return &walRef{db: db, wal: wal, pageSize: sc.ps, nPage: sc.nPage, pos: sc.pos, frames: frames}, sc, nil
}

// newScan validates a WAL header and starts a walk before its first frame.
func newScan(hdr [refWALHeaderLen]byte) (*walScan, error) {
	sc := &walScan{hdr: hdr, committed: map[uint32]int64{}}
	switch binary.BigEndian.Uint32(hdr[:]) {
	case refWALMagicLE:
		sc.order = binary.LittleEndian
	case refWALMagicBE:
		sc.order = binary.BigEndian
	default:
		return nil, fmt.Errorf("WAL header: bad magic %08x", binary.BigEndian.Uint32(hdr[:]))
	}
	if v := binary.BigEndian.Uint32(hdr[4:]); v != refWALVersion {
		return nil, fmt.Errorf("WAL header: format version %d", v)
	}
	sc.ps = int64(binary.BigEndian.Uint32(hdr[8:]))
	if sc.ps == 1 {
		sc.ps = 65536
	}
	if sc.ps < 512 || sc.ps > 65536 || sc.ps&(sc.ps-1) != 0 {
		return nil, fmt.Errorf("WAL header: page size %d", sc.ps)
	}
	s := cksum(sc.order, hdr[:24], [2]uint32{})
	if s[0] != binary.BigEndian.Uint32(hdr[24:]) || s[1] != binary.BigEndian.Uint32(hdr[28:]) {
		return nil, errors.New("WAL header: checksum mismatch")
	}
	copy(sc.salt[:], hdr[16:24])
	sc.pos = walPosition{salt: sc.salt, ck: s}
	return sc, nil
}

// continueScan returns a copy of prev to walk on from, or nil to walk from
// the header: prev must have a commit frame, the same header, upTo must
// not be before that frame, and the frame must still be in the -wal with
// the salts and the cumulative checksum prev validated.
func continueScan(wal io.ReaderAt, walSize int64, upTo uint32, prev *walScan, hdr [refWALHeaderLen]byte) (*walScan, error) {
	if prev == nil || prev.ino == 0 || prev.pos.mx == 0 || prev.hdr != hdr || (upTo != 0 && upTo < prev.pos.mx) {
		return nil, nil
	}
	end := refWALHeaderLen + int64(prev.pos.mx)*(refFrameHeadLen+prev.ps)
	if walSize < end {
		return nil, nil
	}
	head := make([]byte, refFrameHeadLen)
	if _, err := wal.ReadAt(head, end-prev.ps-refFrameHeadLen); err != nil {
		return nil, fmt.Errorf("read frame %d's header: %w", prev.pos.mx, err)
	}
	if binary.BigEndian.Uint32(head[4:]) != prev.nPage || !bytes.Equal(head[8:16], prev.salt[:]) ||
		binary.BigEndian.Uint32(head[16:]) != prev.pos.ck[0] || binary.BigEndian.Uint32(head[20:]) != prev.pos.ck[1] {
		return nil, nil
	}
	sc := *prev
	sc.checked = false
	sc.changed = nil
	if prev.checked {
		sc.changed = map[uint32]bool{}
	}
	sc.committed = make(map[uint32]int64, len(prev.committed))
	for p, at := range prev.committed {
		sc.committed[p] = at
	}
	return &sc, nil
}

// walk reads the frames after sc's last commit frame up to upTo (0: no
// limit), while their salts and checksums validate, and moves sc to the
// last commit frame among them.
func (sc *walScan) walk(wal io.ReaderAt, walSize int64, upTo uint32) {
	frameLen := refFrameHeadLen + sc.ps
	first := int64(refWALHeaderLen) + int64(sc.pos.mx)*frameLen
	if walSize <= first {
		return
	}
	pending := map[uint32]int64{} // frames of the transaction not committed yet
	s := sc.pos.ck
	in := bufio.NewReaderSize(io.NewSectionReader(wal, first, walSize-first), 1<<20)
	frame := make([]byte, frameLen)
	for n := sc.pos.mx + 1; upTo == 0 || n <= upTo; n++ {
		if _, err := io.ReadFull(in, frame); err != nil {
			break // a partial frame ends the WAL
		}
		pg, nTrunc := binary.BigEndian.Uint32(frame), binary.BigEndian.Uint32(frame[4:])
		if pg == 0 || !bytes.Equal(frame[8:16], sc.salt[:]) {
			break
		}
		s = cksum(sc.order, frame[:8], s)
		s = cksum(sc.order, frame[refFrameHeadLen:], s)
		if s[0] != binary.BigEndian.Uint32(frame[16:]) || s[1] != binary.BigEndian.Uint32(frame[20:]) {
			break
		}
		pending[pg] = refWALHeaderLen + int64(n-1)*frameLen + refFrameHeadLen
		if nTrunc != 0 {
			for p, at := range pending {
				sc.committed[p] = at
				if sc.changed != nil {
					sc.changed[p] = true
				}
			}
			clear(pending)
			sc.nPage, sc.pos = nTrunc, walPosition{salt: sc.salt, mx: n, ck: s}
		}
	}
}

// openWALRef opens the -wal at path for reading and composes the state at
// its last commit at or before upTo, continuing prev when it can (see
// composeWALFrom). The caller closes the file.
func openWALRef(db interface{ ReadAt([]byte, int64) error }, path string, upTo uint32, prev *walScan) (*walRef, *walScan, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open the -wal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("stat the -wal: %w", err)
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	if prev != nil && prev.ino != ino {
		prev = nil
	}
	ref, sc, err := composeWALFrom(db, f, fi.Size(), upTo, prev)
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	sc.ino = ino
	return ref, sc, f, nil
}

// versionIDPosition returns the WAL position and the 100 header bytes that
// a version id holds (docs/FORMAT.md: inode, xattr length, xattr or WAL
// position, header); pos is nil for a rollback-journal state.
func versionIDPosition(vid []byte) (pos, header []byte, err error) {
	if len(vid) < 9 || len(vid) < 9+int(vid[8]) {
		return nil, nil, fmt.Errorf("version id of %d bytes", len(vid))
	}
	x := vid[9 : 9+int(vid[8])]
	header = vid[9+int(vid[8]):]
	if bytes.HasPrefix(x, []byte(refPositionMark)) {
		pos = x
	}
	return pos, header, nil
}
