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

// composeWAL validates the -wal from its header and returns the state at
// its last commit frame at or before frame upTo (0: no limit): the frames
// are read in order, and the walk stops at the first frame whose salts or
// cumulative checksum do not validate, or past upTo. errNoCommit: no frame
// of the current generation commits.
func composeWAL(db interface{ ReadAt([]byte, int64) error }, wal io.ReaderAt, walSize int64, upTo uint32) (*walRef, error) {
	hdr := make([]byte, refWALHeaderLen)
	if walSize < refWALHeaderLen {
		return nil, errNoCommit
	}
	if _, err := wal.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("read the WAL header: %w", err)
	}
	var order binary.ByteOrder
	switch binary.BigEndian.Uint32(hdr) {
	case refWALMagicLE:
		order = binary.LittleEndian
	case refWALMagicBE:
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("WAL header: bad magic %08x", binary.BigEndian.Uint32(hdr))
	}
	if v := binary.BigEndian.Uint32(hdr[4:]); v != refWALVersion {
		return nil, fmt.Errorf("WAL header: format version %d", v)
	}
	ps := int64(binary.BigEndian.Uint32(hdr[8:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("WAL header: page size %d", ps)
	}
	s := cksum(order, hdr[:24], [2]uint32{})
	if s[0] != binary.BigEndian.Uint32(hdr[24:]) || s[1] != binary.BigEndian.Uint32(hdr[28:]) {
		return nil, errors.New("WAL header: checksum mismatch")
	}
	var salt [8]byte
	copy(salt[:], hdr[16:24])

	ref := &walRef{db: db, wal: wal, pageSize: ps}
	pending := map[uint32]int64{} // frames of the transaction not committed yet
	committed := map[uint32]int64{}
	frameLen := refFrameHeadLen + ps
	in := bufio.NewReaderSize(io.NewSectionReader(wal, refWALHeaderLen, walSize-refWALHeaderLen), 1<<20)
	frame := make([]byte, frameLen)
	for n := uint32(1); upTo == 0 || n <= upTo; n++ {
		if _, err := io.ReadFull(in, frame); err != nil {
			break // a partial frame ends the WAL
		}
		pg, nTrunc := binary.BigEndian.Uint32(frame), binary.BigEndian.Uint32(frame[4:])
		if pg == 0 || !bytes.Equal(frame[8:16], salt[:]) {
			break
		}
		s = cksum(order, frame[:8], s)
		s = cksum(order, frame[refFrameHeadLen:], s)
		if s[0] != binary.BigEndian.Uint32(frame[16:]) || s[1] != binary.BigEndian.Uint32(frame[20:]) {
			break
		}
		pending[pg] = refWALHeaderLen + int64(n-1)*frameLen + refFrameHeadLen
		if nTrunc != 0 {
			for p, at := range pending {
				committed[p] = at
			}
			clear(pending)
			ref.nPage, ref.pos = nTrunc, walPosition{salt: salt, mx: n, ck: s}
		}
	}
	if ref.pos.mx == 0 {
		return nil, errNoCommit
	}
	for p := range committed {
		if p > ref.nPage {
			delete(committed, p) // cut to the commit's database size
		}
	}
	ref.frames = committed
	return ref, nil
}

// openWALRef opens the -wal at path for reading and composes the state at
// its last commit at or before upTo. The caller closes the file.
func openWALRef(db interface{ ReadAt([]byte, int64) error }, path string, upTo uint32) (*walRef, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open the -wal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat the -wal: %w", err)
	}
	ref, err := composeWAL(db, f, fi.Size(), upTo)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return ref, f, nil
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
