//go:build cgo

package sqlite3vfs

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"math/bits"
	"os"
	"time"
	"unsafe"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// walQueue is the queue of WAL commits the VFS recorded without calling Go
// for the database id (shimwalqueue.c). The C side finds the queue by id:
// a database whose connections all closed has none, and takes return
// nothing.
type walQueue struct{ id uint64 }

// WALQueueFor returns the queue of WAL commits of the tracker database id.
func WALQueueFor(id uint64) tracker.WALQueue { return walQueue{id} }

func (q walQueue) Take(keep bool) (tracker.QueuedWAL, bool) {
	var t C.vshim_walq
	k := C.int(0)
	if keep {
		k = 1
	}
	if C.vshim_walq_take(C.uint64_t(q.id), k, &t) == 0 {
		return tracker.QueuedWAL{}, false
	}
	out := tracker.QueuedWAL{
		From:    C.GoBytes(unsafe.Pointer(&t.from[0]), C.int(len(t.from))),
		To:      C.GoBytes(unsafe.Pointer(&t.to[0]), C.int(len(t.to))),
		Commits: int(t.nCommit),
		Last:    time.Unix(0, int64(t.lastNs)),
		Lost:    t.ok == 0,
	}
	if t.aFrames != nil {
		p := t.aFrames
		out.Frames = unsafe.Slice((*byte)(unsafe.Pointer(p)), int(t.nFrames))
		out.Release = func() { C.free(unsafe.Pointer(p)) }
	}
	return out, true
}

func (q walQueue) OpenWAL() *os.File {
	fd := C.vshim_walq_dup_wal(C.uint64_t(q.id))
	if fd < 0 {
		return nil
	}
	return os.NewFile(uintptr(fd), "-wal")
}

func (q walQueue) Enable(pos []byte, chunks []uint32, chunkSize int) {
	if len(pos) != 48 || len(chunks) == 0 || chunkSize <= 0 || chunkSize&(chunkSize-1) != 0 {
		return
	}
	C.vshim_walq_enable(C.uint64_t(q.id), (*C.uchar)(unsafe.Pointer(&pos[0])),
		(*C.uint32_t)(unsafe.Pointer(&chunks[0])), C.int(len(chunks)), C.int(bits.TrailingZeros(uint(chunkSize))))
}
