//go:build cgo

package sqlite3vfs

/*
#include <stdint.h>
#include <stdlib.h>
*/
import "C"

import (
	"runtime/debug"
	"unsafe"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// SQLite result codes returned to C.
const (
	sqliteOK       = 0
	sqliteError    = 1
	sqliteInternal = 2
	sqliteNotFound = 12
)

func recovered(where string) {
	if r := recover(); r != nil {
		logger().Error("panic in verneuil VFS callback (recovered)", "where", where, "panic", r, "stack", string(debug.Stack()))
	}
}

// verneuilGoOpen registers a connection's main file and returns its handle
// (0: not replicated). When the hooks know the database's spool directory,
// *zSpool receives it, allocated with malloc for the caller to free.
//
// *dbID receives the id of the handle's database when the hooks give one
// (dbIDs): its connections share a queue of WAL commits (shimwalqueue.c).
//
//export verneuilGoOpen
func verneuilGoOpen(zPath *C.char, zSpool **C.char, dbID *C.uint64_t) (h C.uint64_t) {
	defer recovered("open")
	hk := current()
	if hk == nil {
		return 0
	}
	id := hk.Open(C.GoString(zPath))
	if sd, ok := hk.(spoolDirs); ok && id != 0 {
		if dir := sd.SpoolDir(id); dir != "" {
			*zSpool = C.CString(dir)
		}
	}
	if ids, ok := hk.(dbIDs); ok && id != 0 {
		*dbID = C.uint64_t(ids.DBID(id))
	}
	return C.uint64_t(id)
}

// dbIDs is implemented by Hooks whose databases take WAL commits queued by
// the VFS (*tracker.Manager): DBID returns the id of the database of handle
// h (0: none), WALQueued is told when a database's queue receives its
// first commit since the tracker last took it (drain false), or grows
// past the size the tracker applies in the background (drain true).
type dbIDs interface {
	DBID(h uint64) uint64
	WALQueued(h uint64, drain bool)
}

// verneuilGoWALQueued is called by shimwalqueue.c when the queue of the
// database of handle h receives its first commit since it was taken, or
// grows past the size that is applied in the background (drain).
//
//export verneuilGoWALQueued
func verneuilGoWALQueued(h C.uint64_t, drain C.int) {
	defer recovered("wal queued")
	if ids, ok := current().(dbIDs); ok {
		ids.WALQueued(uint64(h), drain != 0)
	}
}

//export verneuilGoClose
func verneuilGoClose(h C.uint64_t) {
	defer recovered("close")
	if hk := current(); hk != nil {
		hk.Release(uint64(h))
	}
}

//export verneuilGoCapture
func verneuilGoCapture(h C.uint64_t, f unsafe.Pointer, kind C.int, dirty *C.uint32_t, ext *C.uint32_t, n C.int,
	preX *C.uchar, preXLen C.int, preHdr *C.uchar, postX *C.uchar, postXLen C.int, seq C.uint64_t, ino C.uint64_t) (want C.int) {
	defer func() {
		if r := recover(); r != nil {
			logger().Error("panic in verneuil capture (recovered)", "panic", r, "stack", string(debug.Stack()))
			want = 1
		}
	}()
	hk := current()
	if hk == nil {
		return 0
	}
	ev := tracker.Event{Kind: tracker.Kind(kind), Seq: uint64(seq), Ino: uint64(ino)}
	if n > 0 {
		ev.Dirty = append([]uint32(nil), unsafe.Slice((*uint32)(unsafe.Pointer(dirty)), int(n))...)
		if ext != nil {
			ev.Extents = append([]uint32(nil), unsafe.Slice((*uint32)(unsafe.Pointer(ext)), 2*int(n))...)
		}
	}
	if preXLen > 0 {
		ev.PreXattr = C.GoBytes(unsafe.Pointer(preX), preXLen)
	}
	if preHdr != nil {
		ev.PreHeader = C.GoBytes(unsafe.Pointer(preHdr), tracker.HeaderLen)
	}
	if postXLen > 0 {
		ev.PostXattr = C.GoBytes(unsafe.Pointer(postX), postXLen)
	}
	if hk.Capture(uint64(h), &source{f: f}, ev) {
		return 1
	}
	return 0
}

//export verneuilGoPragma
func verneuilGoPragma(h C.uint64_t, f unsafe.Pointer, name, arg *C.char, out **C.char) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			logger().Error("panic in verneuil pragma (recovered)", "panic", r, "stack", string(debug.Stack()))
			*out = C.CString("verneuil: internal error")
			rc = sqliteInternal
		}
	}()
	hk := current()
	if hk == nil {
		*out = C.CString("verneuil: replication is not configured")
		return sqliteError
	}
	var a string
	if arg != nil {
		a = C.GoString(arg)
	}
	res, err := hk.Pragma(uint64(h), &source{f: f}, C.GoString(name), a)
	if err != nil {
		*out = C.CString(err.Error())
		return sqliteError
	}
	*out = C.CString(res)
	return sqliteOK
}
