//go:build cgo

package sqlite3vfs

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// Hooks receives the VFS events; *tracker.Manager implements it.
type Hooks interface {
	Open(path string) uint64
	Capture(h uint64, src tracker.Source, ev tracker.Event) (wantCheck bool)
	Pragma(h uint64, src tracker.Source, name, arg string) (string, error)
	Release(h uint64)
}

// spoolDirs is implemented by Hooks that know the spool directory of a
// handle's database (*tracker.Manager). The VFS remembers it so that a
// child forked without exec, where Go is gone, can leave the rescan marker
// (spool.RescanMarker) there when it writes the database.
type spoolDirs interface {
	SpoolDir(h uint64) string
}

type hooksBox struct{ h Hooks }

var (
	hooks   atomic.Pointer[hooksBox]
	log     atomic.Pointer[slog.Logger]
	regMu   sync.Mutex
	regDone = map[string]bool{}
)

func current() Hooks {
	if b := hooks.Load(); b != nil {
		return b.h
	}
	return nil
}

func logger() *slog.Logger {
	if l := log.Load(); l != nil {
		return l
	}
	return slog.Default()
}

// SetHooks installs the receiver of VFS events (nil: pass-through only).
func SetHooks(h Hooks, l *slog.Logger) {
	if l != nil {
		log.Store(l)
	}
	if h == nil {
		hooks.Store(nil)
		return
	}
	hooks.Store(&hooksBox{h})
}

// Register registers the replicating VFS under name, wrapping the "unix"
// VFS, optionally as the default VFS. chunkSize must be a power of two of
// at least 64 KiB and the same for every call in a process.
func Register(name string, makeDefault bool, chunkSize int) error {
	if chunkSize < 1<<16 || chunkSize&(chunkSize-1) != 0 {
		return fmt.Errorf("register vfs %s: chunk size %d is not a power of two ≥ 65536", name, chunkSize)
	}
	regMu.Lock()
	defer regMu.Unlock()
	if regDone[name] && !makeDefault {
		return nil
	}
	cname := C.CString(name) // copied by vshim_register
	defer C.free(unsafe.Pointer(cname))
	def := C.int(0)
	if makeDefault {
		def = 1
	}
	rc := C.vshim_register(cname, def, C.int(bits.TrailingZeros(uint(chunkSize))))
	if rc != sqliteOK {
		return fmt.Errorf("register vfs %s: sqlite error %d", name, int(rc))
	}
	regDone[name] = true
	return nil
}

// Stats are the shim's counters.
type Stats struct {
	Commits, Rollbacks, Checks, XattrErrors int64
	// JournalsPaired counts rollback journals paired with the tracked
	// main file of their connection.
	JournalsPaired int64
	// SliceHolds counts the SHARED holds of sliced rescans (one per
	// slice read outside a capture).
	SliceHolds int64
	// WALCommits counts write-lock holds on WAL databases that committed
	// (prototype of WAL commit detection: counted, not captured);
	// WALResets the holds that only restarted or emptied the WAL;
	// WALLastMxFrame is the WAL's last committed frame at the last one.
	WALCommits, WALResets, WALLastMxFrame int64
	// WALQueued counts WAL commits queued without a Go call, and
	// WALQueueTakes the queues of such commits the tracker took
	// (shimwalqueue.c).
	WALQueued, WALQueueTakes int64
}

// ReadStats returns the shim's counters.
func ReadStats() Stats {
	var s C.vshim_stats
	C.vshim_get_stats(&s)
	return Stats{int64(s.commits), int64(s.rollbacks), int64(s.checks), int64(s.xattrErrors), int64(s.journalsPaired), int64(s.sliceHolds),
		int64(s.walCommits), int64(s.walResets), int64(s.walLastMxFrame), int64(s.walQueued), int64(s.walQueueTakes)}
}

// source reads the database through SQLite's unix file during a capture.
type source struct{ f unsafe.Pointer }

const sqliteIOErrShortRead = 10 | 2<<8

func (s *source) ReadAt(p []byte, off int64) error {
	for len(p) > 0 {
		n := min(len(p), 1<<30)
		rc := C.vshim_read(s.f, unsafe.Pointer(&p[0]), C.int(n), C.int64_t(off))
		if rc != sqliteOK && rc != sqliteIOErrShortRead {
			return fmt.Errorf("read %d bytes at %d: sqlite error %d", n, off, int(rc))
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func (s *source) Size() (int64, error) {
	n := int64(C.vshim_size(s.f))
	if n < 0 {
		return 0, errors.New("file size: sqlite I/O error")
	}
	return n, nil
}

func (s *source) Xattr() ([]byte, error) {
	var buf [64]byte
	n := C.vshim_get_xattr(s.f, (*C.uchar)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	if n < 0 {
		return nil, errors.New("version xattr unavailable")
	}
	if n == 0 {
		return nil, nil
	}
	return append([]byte(nil), buf[:n]...), nil
}

// WriteLocked reports whether the capture's connection holds more than
// SHARED (RESERVED or EXCLUSIVE: locking_mode=EXCLUSIVE).
func (s *source) WriteLocked() bool {
	return int(C.vshim_lock_level(s.f)) > sqliteLockShared
}

const sqliteLockShared = 1

// OpenSlices opens a private file on the capture's database, for a sliced
// rescan outside the capture (tracker.SliceReader).
func (s *source) OpenSlices() (tracker.SliceReader, error) {
	h := C.vshim_slice_open(s.f)
	if h == nil {
		return nil, errors.New("open the database for a sliced rescan: sqlite I/O error")
	}
	return &sliceReader{h: h}, nil
}

// sliceReader is a private unix file on a tracked database (shimfiles.c).
type sliceReader struct{ h unsafe.Pointer }

const sqliteBusy = 5

func (r *sliceReader) Lock() (bool, error) {
	switch rc := C.vshim_slice_lock(r.h); rc {
	case sqliteOK:
		return true, nil
	case sqliteBusy:
		return false, nil
	default:
		return false, fmt.Errorf("take SHARED: sqlite error %d", int(rc))
	}
}

func (r *sliceReader) Unlock() error {
	if rc := C.vshim_slice_unlock(r.h); rc != sqliteOK {
		return fmt.Errorf("release SHARED: sqlite error %d", int(rc))
	}
	return nil
}

func (r *sliceReader) ReadAt(p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	rc := C.vshim_slice_read(r.h, unsafe.Pointer(&p[0]), C.int(len(p)), C.int64_t(off))
	if rc != sqliteOK && rc != sqliteIOErrShortRead {
		return fmt.Errorf("read %d bytes at %d: sqlite error %d", len(p), off, int(rc))
	}
	return nil
}

func (r *sliceReader) Stamp() (tracker.Stamp, error) {
	var st C.vshim_stamp
	if rc := C.vshim_slice_stamp(r.h, &st); rc != sqliteOK {
		return tracker.Stamp{}, fmt.Errorf("stat the database: sqlite error %d", int(rc))
	}
	out := tracker.Stamp{
		Ino: uint64(st.ino), Size: int64(st.size),
		MtimeSec: int64(st.mtimeSec), MtimeNsec: int64(st.mtimeNsec),
		CtimeSec: int64(st.ctimeSec), CtimeNsec: int64(st.ctimeNsec),
		Header: C.GoBytes(unsafe.Pointer(&st.header[0]), C.int(len(st.header))),
	}
	if st.xattrLen > 0 {
		out.Xattr = C.GoBytes(unsafe.Pointer(&st.xattr[0]), st.xattrLen)
	}
	return out, nil
}

func (r *sliceReader) Close() error {
	C.vshim_slice_close(r.h)
	r.h = nil
	return nil
}

// MakeDefault makes the registered VFS called name SQLite's default.
func MakeDefault(name string) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if rc := C.vshim_make_default(cname); rc != sqliteOK {
		return fmt.Errorf("make vfs %s the default: sqlite error %d", name, int(rc))
	}
	return nil
}
