//go:build cgo

package sqlite3vfs

/*
#include <stdint.h>
*/
import "C"

import (
	"runtime/debug"
	"unsafe"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// walIndexHdrLen is the length of one copy of the wal-index header.
const walIndexHdrLen = 48

// verneuilGoWAL is called by shimwal.c before the WAL write lock of the
// tracked main file f is released, when the hold changed the wal-index
// header: prior is the header when the lock was granted (nil when unknown),
// now the header at the release (nil when its two copies disagree), walFd
// a descriptor of the -wal valid during the call (-1: opened by name), and
// written[0:nWritten] the bytes this connection wrote to the -wal from
// offset writtenAt during the hold (nil: unknown), valid during the call.
//
//export verneuilGoWAL
func verneuilGoWAL(h C.uint64_t, f unsafe.Pointer, zPath *C.char, prior, now *C.uchar, ino C.uint64_t, walFd C.int,
	written *C.uchar, writtenAt, nWritten C.int64_t) (want C.int) {
	defer func() {
		if r := recover(); r != nil {
			logger().Error("panic in verneuil WAL capture (recovered)", "panic", r, "stack", string(debug.Stack()))
			want = 1
		}
	}()
	hk := current()
	if hk == nil {
		return 0
	}
	ev := tracker.Event{Kind: tracker.WALCommit, Ino: uint64(ino)}
	if prior != nil {
		ev.WALPrior = C.GoBytes(unsafe.Pointer(prior), walIndexHdrLen)
	}
	if now != nil {
		ev.WALNow = C.GoBytes(unsafe.Pointer(now), walIndexHdrLen)
	}
	ev.WALPath = C.GoString(zPath) + "-wal" // a sliced rescan opens it (tracker.walRescan)
	if walFd >= 0 {
		ev.WAL = walFD(walFd)
	}
	if written != nil && nWritten > 0 {
		ev.WALWritten = unsafe.Slice((*byte)(unsafe.Pointer(written)), int(nWritten))
		ev.WALWrittenAt = int64(writtenAt)
	}
	if hk.Capture(uint64(h), &source{f: f}, ev) {
		return 1
	}
	return 0
}
