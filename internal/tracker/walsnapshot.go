// WAL snapshots: the committed state of a database in WAL mode read
// outside the VFS, for verneuilctl sync and verify and the copier daemon
// (docs/ARCHITECTURE.md, "WAL replication").
//
// The caller holds a WAL read lock through SQLite itself: a read
// transaction of a connection in WAL mode (verneuilctl opens one
// read-only). While it lasts, SQLite's protocol guarantees that
//
//   - the WAL is not restarted (a restart needs every reader lock other
//     than slot 0; a reader on slot 0 pins a WAL whose every frame is in
//     the database file, so the state is the file alone), so the frames
//     of the generation the reader started in are not overwritten;
//   - no checkpoint copies into the database file a frame past the
//     reader's mark (at most the reader's snapshot), so every page of the
//     file that changes has a frame at or before that snapshot.
//
// The snapshot reads the wal-index header H from the -shm after the read
// transaction started (H is the reader's snapshot or a later commit of the
// same generation) and composes, as the capture does, the database file
// overlaid with the validated frames 1..H.mxFrame: pages with a frame
// there are read from the WAL, the others from the file, which the
// checkpoints above only change for pages that have such a frame. When
// nBackfill reached H.mxFrame every frame is already in the file, which is
// then the state (and the WAL may be restarted under a slot-0 reader: its
// frames are not read).

package tracker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"syscall"
	"time"
)

// walShmPrefix is what a snapshot reads of the -shm: both copies of the
// wal-index header and nBackfill (the first field of the checkpoint
// information that follows them).
const walShmPrefix = 2*walIndexHdrLen + 4

// walShmReadTries bounds the reads of a wal-index header a writer is
// updating (its two copies differ for a moment).
const walShmReadTries = 200

// ErrWALShm says that the -shm holds no valid wal-index header (its two
// copies differ, or the checksum fails) after repeated reads.
var ErrWALShm = errors.New("the wal-index header in the -shm file is not valid")

// WALSnapshot is the committed state of a database in WAL mode at the
// wal-index header read from its -shm (see the top of this file).
type WALSnapshot struct {
	pos    walPos
	ino    uint64
	src    Source // the composed state
	size   int64
	header []byte
	shm    *os.File
	wal    *os.File
	file   Source // the database file
	// seq numbers the state if it is captured: the time before the
	// header was read, below the number of any later commit's capture on
	// this host (those read the clock after the header was replaced).
	seq uint64
}

// fileSource is a Source over a descriptor of the database file.
type fileSource struct{ f *os.File }

func (s fileSource) ReadAt(p []byte, off int64) error {
	n, err := s.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		clear(p[n:])
		return nil
	}
	return err
}

func (s fileSource) Size() (int64, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (s fileSource) Xattr() ([]byte, error) { return nil, nil }

// sizedSource is a Source whose size is fixed and whose version xattr is
// a WAL position.
type sizedSource struct {
	Source
	size int64
	id   []byte
}

func (s sizedSource) Size() (int64, error)   { return s.size, nil }
func (s sizedSource) Xattr() ([]byte, error) { return s.id, nil }

// readShmHeader returns the wal-index header of the -shm and nBackfill:
// two reads that agree, each with both copies of the header equal.
func readShmHeader(shm *os.File) (hdr []byte, backfill uint32, err error) {
	a := make([]byte, walShmPrefix)
	b := make([]byte, walShmPrefix)
	for range walShmReadTries {
		if _, err := shm.ReadAt(a, 0); err != nil {
			return nil, 0, fmt.Errorf("read the -shm: %w", err)
		}
		if _, err := shm.ReadAt(b, 0); err != nil {
			return nil, 0, fmt.Errorf("read the -shm: %w", err)
		}
		h := a[:walIndexHdrLen]
		if bytes.Equal(h, a[walIndexHdrLen:2*walIndexHdrLen]) && bytes.Equal(a[:2*walIndexHdrLen], b[:2*walIndexHdrLen]) {
			if _, ok := parseWALIndexHeader(h); ok {
				return h, binary.NativeEndian.Uint32(b[2*walIndexHdrLen:]), nil
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	return nil, 0, ErrWALShm
}

// ReadWALSnapshot composes the committed state of the database whose
// database file, -wal and -shm are open as db, wal and shm. The caller
// holds a WAL read lock on the database through a SQLite connection for
// as long as it uses the snapshot, and must not close, while that
// connection holds locks, any descriptor of the database file or of the
// -shm (closing one drops every POSIX lock of the process on the file):
// it opens them and closes them after the connection.
func ReadWALSnapshot(db, wal, shm *os.File) (*WALSnapshot, error) {
	fi, err := db.Stat()
	if err != nil {
		return nil, err
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, errors.New("no inode number")
	}
	seq := uint64(time.Now().UnixNano())
	hdr, backfill, err := readShmHeader(shm)
	if err != nil {
		return nil, err
	}
	pos, _ := parseWALIndexHeader(hdr)
	file := fileSource{f: db}
	s := &WALSnapshot{pos: pos, ino: sys.Ino, shm: shm, wal: wal, file: file, seq: seq}
	switch {
	case pos.mx == 0:
		// An empty WAL: the state is the file.
		s.size = fi.Size()
		s.src = sizedSource{Source: file, size: s.size, id: pos.id()}
	case backfill >= pos.mx:
		// Every frame is in the file (which the checkpoint that copied
		// the last one truncated to the commit size).
		st := &walState{pos: pos, frames: map[uint32]uint32{}}
		s.src = &walView{file: file, wal: wal, st: st}
	default:
		start, err := walGenerationStart(wal, pos)
		if err != nil {
			return nil, err
		}
		st := &walState{pos: start, frames: map[uint32]uint32{}}
		if _, err := st.extend(wal, pos); err != nil {
			return nil, err
		}
		s.src = &walView{file: file, wal: wal, st: st}
	}
	if s.size, err = s.src.Size(); err != nil {
		return nil, err
	}
	s.header = make([]byte, HeaderLen)
	if err := s.src.ReadAt(s.header, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	return s, nil
}

// Source reads the composed state (as long as the read lock is held).
func (s *WALSnapshot) Source() Source { return s.src }

// Size is the length of the composed state.
func (s *WALSnapshot) Size() int64 { return s.size }

// VersionID is the identity of the state, as manifests record it.
func (s *WALSnapshot) VersionID() []byte { return identity(s.ino, s.pos.id(), s.header) }

// MxFrame is the WAL frame the state ends at (0: the file alone).
func (s *WALSnapshot) MxFrame() uint32 { return s.pos.mx }

// sameGeneration checks that the -shm still describes the generation of
// the snapshot: no restart happened since it was read.
func (s *WALSnapshot) sameGeneration() error {
	hdr, _, err := readShmHeader(s.shm)
	if err != nil {
		return err
	}
	now, _ := parseWALIndexHeader(hdr)
	if now.salt != s.pos.salt || now.mx < s.pos.mx {
		return fmt.Errorf("the WAL was restarted while it was read: %w", ErrDeferred)
	}
	return nil
}

// WALPositionOf returns the WAL position a version id records (salts and
// mxFrame), ok false for an identity of a rollback-mode state.
func WALPositionOf(versionID []byte) (salt [8]byte, mx uint32, ok bool) {
	if len(versionID) < 9 {
		return salt, 0, false
	}
	n := int(versionID[8])
	x := versionID[9:min(len(versionID), 9+n)]
	if n != len(walIdentityMark)+20 || len(x) != n || !bytes.HasPrefix(x, []byte(walIdentityMark)) {
		return salt, 0, false
	}
	x = x[len(walIdentityMark):]
	copy(salt[:], x)
	return salt, binary.BigEndian.Uint32(x[8:]), true
}

// WALHeaderPosition returns the position of the wal-index header of the
// -shm open as shm (salts and mxFrame), read without any lock: what
// verneuilctl status and the copier daemon compare with the spool.
func WALHeaderPosition(shm *os.File) (salt [8]byte, mx uint32, err error) {
	hdr, _, err := readShmHeader(shm)
	if err != nil {
		return salt, 0, err
	}
	p, _ := parseWALIndexHeader(hdr)
	return p.salt, p.mx, nil
}

// CaptureWAL makes the state of snap, a database in WAL mode read outside
// the VFS, the spool's staged version of the database at path, unless
// the spool already holds it or a later state of the same WAL
// generation. It builds before it returns, and fails with ErrDeferred
// when the spool then holds neither (a state captured while the snapshot
// was read was staged, or the WAL was restarted): read again and retry.
func (m *Manager) CaptureWAL(path string, snap *WALSnapshot) error {
	h := m.Open(path)
	defer m.Release(h)
	db := m.lookup(h)
	if db == nil {
		return errors.New("replication is not running")
	}
	if db.disabled != nil {
		return db.disabled
	}
	if err := db.captureWALSnapshot(snap); err != nil {
		return err
	}
	if err := db.build(); err != nil {
		return err
	}
	man, _, err := db.spool.Manifest()
	if err != nil {
		return err
	}
	if man == nil || !snap.stagedCovers(man.VersionID) {
		return fmt.Errorf("database %s: a state captured while it was read was staged instead of it: %w", path, ErrDeferred)
	}
	return nil
}

// stagedCovers reports whether a staged version id is the snapshot's
// state or a later one of its WAL generation.
func (s *WALSnapshot) stagedCovers(id []byte) bool {
	if bytes.Equal(id, s.VersionID()) {
		return true
	}
	salt, mx, ok := WALPositionOf(id)
	return ok && salt == s.pos.salt && mx > s.pos.mx
}

// captureWALSnapshot is CaptureWAL's capture: adopt the staged manifest
// when it is the state, do nothing when it is a later one, else copy the
// state as a rescan numbered snap.seq (so that a later state captured
// meanwhile by a writer, numbered after it, is never replaced by it).
func (db *DB) captureWALSnapshot(snap *WALSnapshot) error {
	// Commits queued by this process's connections come first (walqueue.go).
	db.mu.Lock()
	db.takeWALQueueLocked(false)
	db.mu.Unlock()
	db.waitSliced(true)
	db.stopWALSliced()
	unlock, err := db.lockForCaptureWithin(captureWALLockWait)
	if err != nil {
		return err
	}
	defer unlock()
	if db.adoptLocked(snap.VersionID()) {
		return nil
	}
	man, _, err := db.spool.Manifest()
	if err != nil {
		man = nil // damaged: replaced
	}
	if err := snap.sameGeneration(); err != nil {
		return err
	}
	if man != nil && !db.spool.RescanWanted() && snap.stagedCovers(man.VersionID) {
		return nil
	}
	if man != nil && man.Seq >= snap.seq {
		return fmt.Errorf("a version numbered after the snapshot is staged: %w", ErrDeferred)
	}
	walRescanned.Add(1)
	if err := db.rescanLocked(snap.src, snap.ino, snap.pos.id(), snap.seq); err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.pending != nil {
		db.pending.seq = snap.seq // not renumbered after the staged version
	}
	db.wal = nil // no position this process can continue from
	return nil
}

// At returns the state of the snapshot's database at the WAL position a
// version id records, a later commit of the snapshot's generation (the
// frames after the snapshot's position are read and validated up to
// that position's checksums): the state a writer captured after the
// snapshot was read, which the read lock still lets one compose (see the
// top of this file). Check Settled after reading it.
func (s *WALSnapshot) At(versionID []byte) (*WALSnapshot, error) {
	salt, mx, ok := WALPositionOf(versionID)
	if !ok || salt != s.pos.salt || mx < s.pos.mx {
		return nil, errors.New("not a later position of the snapshot's WAL generation")
	}
	if bytes.Equal(versionID, s.VersionID()) {
		return s, nil
	}
	var from *walState
	if v, ok := s.src.(*walView); ok {
		from = &walState{pos: v.st.pos, frames: maps.Clone(v.st.frames)}
	} else {
		// An empty WAL: the later commits start the generation.
		ps, bigEnd := s.walFormat()
		start, err := walGenerationStart(s.wal, walPos{salt: salt, pageSize: ps, bigEnd: bigEnd})
		if err != nil {
			return nil, err
		}
		from = &walState{pos: start, frames: map[uint32]uint32{}}
	}
	wal := s.wal
	x := versionID[9+len(walIdentityMark):]
	target := walPos{salt: salt, mx: mx, ck: [2]uint32{binary.BigEndian.Uint32(x[12:]), binary.BigEndian.Uint32(x[16:])},
		pageSize: from.pos.pageSize, bigEnd: from.pos.bigEnd}
	fh := make([]byte, walFrameHdrLen)
	if _, err := wal.ReadAt(fh, frameOffset(mx, target.pageSize)); err != nil {
		return nil, fmt.Errorf("read WAL frame %d: %w", mx, err)
	}
	target.nPage = binary.BigEndian.Uint32(fh[4:])
	if _, err := from.extend(wal, target); err != nil {
		return nil, err
	}
	t := &WALSnapshot{pos: target, ino: s.ino, shm: s.shm, wal: wal, file: s.file, seq: s.seq,
		src: &walView{file: s.file, wal: wal, st: from}}
	t.size, _ = t.src.Size()
	t.header = make([]byte, HeaderLen)
	if err := t.src.ReadAt(t.header, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if !bytes.Equal(t.VersionID(), versionID) {
		return nil, errors.New("the state at that WAL position has another identity")
	}
	return t, nil
}

// walFormat returns the page size and checksum byte order the -wal's
// header gives (zeros when unreadable).
func (s *WALSnapshot) walFormat() (pageSize int, bigEnd bool) {
	h := make([]byte, walHdrLen)
	if _, err := s.wal.ReadAt(h, 0); err != nil {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(h[8:])), binary.BigEndian.Uint32(h)&1 == 1
}

// Settled reports whether the frames the snapshot was composed from were
// not overwritten while it was read: the -wal's header still has the
// snapshot's salts (a restart rewrites it before any frame).
func (s *WALSnapshot) Settled() error {
	v, ok := s.src.(*walView)
	if !ok || len(v.st.frames) == 0 {
		return nil // read from the file alone
	}
	h := make([]byte, walHdrLen)
	if _, err := v.wal.ReadAt(h, 0); err != nil {
		return fmt.Errorf("read WAL header: %w", err)
	}
	if [8]byte(h[16:24]) != s.pos.salt {
		return fmt.Errorf("the WAL was restarted while it was read: %w", ErrDeferred)
	}
	return nil
}
