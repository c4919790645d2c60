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

// verneuilGoWALHeap is called by shimwalheap.c at COMMIT_PHASETWO of a
// transaction of the tracked main file f whose -wal is open with the
// wal-index in heap memory, with the database's EXCLUSIVE lock held.
// session identifies the stretch during which the connection held that
// lock with this -wal open; walIno is the inode of that -wal (0: unknown).
//
//export verneuilGoWALHeap
func verneuilGoWALHeap(h C.uint64_t, f unsafe.Pointer, zPath *C.char, session, walIno, ino C.uint64_t) (want C.int) {
	defer func() {
		if r := recover(); r != nil {
			logger().Error("panic in verneuil heap-memory WAL capture (recovered)", "panic", r, "stack", string(debug.Stack()))
			want = 1
		}
	}()
	hk := current()
	if hk == nil {
		return 0
	}
	ev := tracker.Event{Kind: tracker.WALHeapCommit, Ino: uint64(ino), WALPath: C.GoString(zPath) + "-wal",
		WALSession: uint64(session), WALIno: uint64(walIno)}
	if hk.Capture(uint64(h), &source{f: f}, ev) {
		return 1
	}
	return 0
}
