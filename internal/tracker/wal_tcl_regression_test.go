package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Regressions found by SQLite's TCL suite run through the VFS
// (docs/TESTING-TCL.md): WAL capture failures that were logged as errors
// although SQLite did nothing wrong.

// levelCounter is a slog handler that counts records per level.
type levelCounter struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (c *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *levelCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.n[r.Level]++
	c.mu.Unlock()
	return nil
}
func (c *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *levelCounter) WithGroup(string) slog.Handler      { return c }
func (c *levelCounter) count(l slog.Level) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[l]
}

// testWAL builds a WAL (one generation, little-endian checksums) of
// frames, one commit at the last, and the wal-index header announcing it.
type testWAL struct {
	pageSize int
	salt     [8]byte
	wal      []byte
	pages    map[uint32][]byte // page -> latest content
	nPage    uint32
	ck       [2]uint32 // checksum of the last frame (or the header)
}

func newTestWAL(pageSize int, salt [8]byte) *testWAL {
	w := &testWAL{pageSize: pageSize, salt: salt, pages: map[uint32][]byte{}}
	h := make([]byte, walHdrLen)
	be := binary.BigEndian
	be.PutUint32(h, walMagic)
	be.PutUint32(h[4:], walVersion)
	be.PutUint32(h[8:], uint32(pageSize))
	copy(h[16:24], salt[:])
	s1, s2 := walChecksum(h[:24], false, 0, 0)
	be.PutUint32(h[24:], s1)
	be.PutUint32(h[28:], s2)
	w.wal, w.ck = h, [2]uint32{s1, s2}
	return w
}

// commit appends one frame per page, the last one the commit frame of a
// database nPage pages long.
func (w *testWAL) commit(nPage uint32, pages map[uint32]byte) {
	be := binary.BigEndian
	s1, s2 := w.ck[0], w.ck[1]
	i := 0
	for pg := uint32(1); pg <= nPage+1000; pg++ {
		fill, ok := pages[pg]
		if !ok {
			continue
		}
		i++
		fr := make([]byte, walFrameHdrLen+w.pageSize)
		be.PutUint32(fr, pg)
		if i == len(pages) {
			be.PutUint32(fr[4:], nPage)
		}
		copy(fr[8:16], w.salt[:])
		data := fr[walFrameHdrLen:]
		for j := range data {
			data[j] = fill + byte(j)
		}
		s1, s2 = walChecksum(fr[:8], false, s1, s2)
		s1, s2 = walChecksum(data, false, s1, s2)
		be.PutUint32(fr[16:], s1)
		be.PutUint32(fr[20:], s2)
		w.wal = append(w.wal, fr...)
		w.pages[pg] = data
	}
	w.nPage, w.ck = nPage, [2]uint32{s1, s2}
}

func (w *testWAL) frames() uint32 {
	return uint32((len(w.wal) - walHdrLen) / (walFrameHdrLen + w.pageSize))
}

// indexHeader is one copy of the wal-index header at the last commit.
func (w *testWAL) indexHeader() []byte {
	h := make([]byte, walIndexHdrLen)
	ne := binary.NativeEndian
	ne.PutUint32(h, walVersion)
	h[12] = 1
	ne.PutUint16(h[14:], uint16(w.pageSize&0xff00|w.pageSize>>16))
	ne.PutUint32(h[16:], w.frames())
	ne.PutUint32(h[20:], w.nPage)
	if w.frames() > 0 {
		ne.PutUint32(h[24:], w.ck[0])
		ne.PutUint32(h[28:], w.ck[1])
	}
	copy(h[32:40], w.salt[:])
	s1, s2 := walChecksum(h[:40], nativeBigEndian, 0, 0)
	ne.PutUint32(h[40:], s1)
	ne.PutUint32(h[44:], s2)
	return h
}

// state is the committed database: file overlaid with the WAL's pages.
func (w *testWAL) state(file []byte) []byte {
	out := make([]byte, int(w.nPage)*w.pageSize)
	copy(out, file)
	for pg, data := range w.pages {
		if pg <= w.nPage {
			copy(out[int(pg-1)*w.pageSize:], data)
		}
	}
	return out
}

// walFixture is a tracked database in WAL mode: a file of two pages and
// its -wal on disk.
type walFixture struct {
	m       *Manager
	db      *DB
	h       uint64
	file    *memFile
	walPath string
	logs    *levelCounter
}

func newWALFixture(t *testing.T) *walFixture {
	t.Helper()
	const ps = 1024
	dir := t.TempDir()
	logs := &levelCounter{n: map[slog.Level]int{}}
	m := New(Options{SpoolDir: filepath.Join(dir, "spool"), Hostname: "h", BuildDelay: time.Hour, Logger: slog.New(logs)})
	m.Start()
	t.Cleanup(func() { m.Close(context.Background()) })
	dbPath := filepath.Join(dir, "w.db")
	data := make([]byte, 2*ps)
	copy(data, "SQLite format 3\x00")
	binary.BigEndian.PutUint16(data[16:], ps)
	data[18], data[19] = 2, 2 // WAL mode
	binary.BigEndian.PutUint32(data[28:], 2)
	if err := os.WriteFile(dbPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h := m.Open(dbPath)
	return &walFixture{m: m, db: m.DB(dbPath), h: h, file: &memFile{data: data}, walPath: dbPath + "-wal", logs: logs}
}

// release is the VFS's call at the release of the WAL write lock.
func (f *walFixture) release(prior, now []byte) {
	f.m.Capture(f.h, f.file, Event{Kind: WALCommit, WALPrior: prior, WALNow: now, WALPath: f.walPath})
}

func (f *walFixture) checkSpool(t *testing.T, want []byte) {
	t.Helper()
	if err := f.db.build(); err != nil {
		t.Fatalf("build: %v", err)
	}
	if got := spoolImage(t, f.db.spool); !bytes.Equal(got, want) {
		t.Fatalf("spool image (%d bytes) differs from the committed state (%d bytes)", len(got), len(want))
	}
}

// TestWALTCLRegression_WALShorterThanHeader: walcrash4.test writes through
// SQLite's crash-simulation VFS stacked on this one. It holds every write
// in memory until an xSync of the file; SQLite syncs the WAL at the commit
// frame's sector and then writes padding frames (copies of the commit
// frame) up to the sector boundary, which stay in the crash VFS. The
// wal-index header announces them while the -wal the tracker reads is a
// partial frame short. That is not SQLite's fault and loses nothing: the
// capture is skipped quietly (no ERROR) and the next capture, once the
// frames reached the file, rescans and holds the committed state.
func TestWALTCLRegression_WALShorterThanHeader(t *testing.T) {
	for _, short := range []int{1, 24, 1024 + 23, 2*(1024+24) + 5} {
		f := newWALFixture(t)
		w := newTestWAL(1024, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
		w.commit(3, map[uint32]byte{1: 0, 2: 10, 3: 20})
		if err := os.WriteFile(f.walPath, w.wal[:len(w.wal)-short], 0o644); err != nil {
			t.Fatal(err)
		}
		f.release(nil, w.indexHeader())
		err := f.db.lastErrForTest()
		if !errors.Is(err, ErrWALShort) {
			t.Fatalf("short by %d bytes: capture error %v, want ErrWALShort", short, err)
		}
		if n := f.logs.count(slog.LevelError); n != 0 {
			t.Fatalf("short by %d bytes: %d ERROR records for a WAL SQLite had not finished writing through the layer above", short, n)
		}
		// The frames reach the file (the layer above syncs), then a commit.
		prior := w.indexHeader()
		w.commit(3, map[uint32]byte{3: 30})
		if err := os.WriteFile(f.walPath, w.wal, 0o644); err != nil {
			t.Fatal(err)
		}
		f.release(prior, w.indexHeader())
		if err := f.db.lastErrForTest(); err != nil {
			t.Fatalf("short by %d bytes: capture after the WAL was complete: %v", short, err)
		}
		f.checkSpool(t, w.state(f.file.data))
	}
}

// TestWALTCLRegression_HeaderInvalidatedUnderWriteLock: superlock.test
// (sqlite3demo_superlock) takes the WAL write and recovery locks and zeroes
// the start of the wal-index header so that the next transaction runs
// recovery; the write lock is released with the two header copies
// differing. Nothing was committed: no error is logged, the remembered
// position is dropped, and the recovery's release (a header never
// witnessed) is captured as the committed state.
func TestWALTCLRegression_HeaderInvalidatedUnderWriteLock(t *testing.T) {
	f := newWALFixture(t)
	w := newTestWAL(1024, [8]byte{9, 9, 9, 9, 1, 1, 1, 1})
	w.commit(2, map[uint32]byte{1: 0, 2: 40})
	if err := os.WriteFile(f.walPath, w.wal, 0o644); err != nil {
		t.Fatal(err)
	}
	f.release(nil, w.indexHeader())
	if err := f.db.lastErrForTest(); err != nil {
		t.Fatalf("first capture: %v", err)
	}
	f.checkSpool(t, w.state(f.file.data))

	// The superlock: released with the header copies differing (nil), or
	// with a copy that agrees but is zeroed (isInit 0).
	for _, now := range [][]byte{nil, make([]byte, walIndexHdrLen)} {
		f.release(w.indexHeader(), now)
		if err := f.db.lastErrForTest(); err != nil {
			t.Fatalf("release with an invalidated header: capture error %v, want none", err)
		}
	}
	if n := f.logs.count(slog.LevelError); n != 0 {
		t.Fatalf("%d ERROR records for a wal-index header invalidated to force recovery", n)
	}
	// Recovery rebuilds the header (prior unreadable), then a commit.
	f.release(nil, w.indexHeader())
	prior := w.indexHeader()
	w.commit(3, map[uint32]byte{3: 50})
	if err := os.WriteFile(f.walPath, w.wal, 0o644); err != nil {
		t.Fatal(err)
	}
	f.release(prior, w.indexHeader())
	if err := f.db.lastErrForTest(); err != nil {
		t.Fatalf("commit after recovery: %v", err)
	}
	f.checkSpool(t, w.state(f.file.data))
}

// TestWALTCLRegression_ShortAfterRememberedPosition: the short WAL comes
// at an incremental commit (the position before it was captured), twice in
// a row, and the commit after the frames reached the file holds the state
// of every commit since.
func TestWALTCLRegression_ShortAfterRememberedPosition(t *testing.T) {
	f := newWALFixture(t)
	w := newTestWAL(1024, [8]byte{7, 7, 7, 7, 3, 3, 3, 3})
	w.commit(2, map[uint32]byte{1: 0, 2: 60})
	if err := os.WriteFile(f.walPath, w.wal, 0o644); err != nil {
		t.Fatal(err)
	}
	f.release(nil, w.indexHeader())
	f.checkSpool(t, w.state(f.file.data))
	for i, fill := range []byte{70, 80} {
		prior := w.indexHeader()
		w.commit(4, map[uint32]byte{2: fill, 4: fill + 1})
		if err := os.WriteFile(f.walPath, w.wal[:len(w.wal)-100], 0o644); err != nil {
			t.Fatal(err)
		}
		f.release(prior, w.indexHeader())
		if err := f.db.lastErrForTest(); !errors.Is(err, ErrWALShort) {
			t.Fatalf("short commit %d: capture error %v, want ErrWALShort", i, err)
		}
	}
	prior := w.indexHeader()
	w.commit(4, map[uint32]byte{3: 90})
	if err := os.WriteFile(f.walPath, w.wal, 0o644); err != nil {
		t.Fatal(err)
	}
	f.release(prior, w.indexHeader())
	if err := f.db.lastErrForTest(); err != nil {
		t.Fatalf("commit after the WAL was complete: %v", err)
	}
	if n := f.logs.count(slog.LevelError); n != 0 {
		t.Fatalf("%d ERROR records", n)
	}
	f.checkSpool(t, w.state(f.file.data))
}
