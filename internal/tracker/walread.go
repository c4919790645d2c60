// Reading the -wal during a WAL capture: through the descriptor the VFS
// lends for the capture (no open per commit), and the frames the capture
// validated kept in memory, so that the chunks holding their pages are
// composed without reading the -wal again.

package tracker

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// walOpenedByName counts the captures that opened the -wal by name: the
// VFS lent none (tests check that commits through it do not).
var walOpenedByName atomic.Int64

// WALOpensByName returns how many WAL captures of this process opened the
// -wal by name rather than through the VFS's descriptor: tests.
func WALOpensByName() int64 { return walOpenedByName.Load() }

// keptFrameBuf bounds the buffer a walState keeps between captures; a
// larger one (a long transaction) is dropped after use.
const keptFrameBuf = 256 << 10

// openWAL returns the -wal of ev: the VFS's reader when it lent one, else
// the file at ev.WALPath, opened until done is called; reads inside
// ev.WALWritten are served from it.
func openWAL(ev Event) (wal io.ReaderAt, done func(), err error) {
	done = func() {}
	if ev.WAL != nil {
		wal = ev.WAL
	} else {
		walOpenedByName.Add(1)
		f, err := os.Open(ev.WALPath)
		if err != nil {
			return nil, nil, fmt.Errorf("open WAL: %w", err)
		}
		wal, done = f, func() { f.Close() }
	}
	if len(ev.WALWritten) > 0 {
		wal = &writtenWAL{file: wal, b: ev.WALWritten, off: ev.WALWrittenAt}
	}
	return wal, done, nil
}

// walFramesFromFile counts the frames WAL captures validated from the
// -wal file rather than from the bytes the VFS recorded as the committing
// connection wrote them: tests.
var walFramesFromFile atomic.Int64

// WALFramesFromFile returns how many frames WAL captures of this process
// read from the -wal file to validate them: tests.
func WALFramesFromFile() int64 { return walFramesFromFile.Load() }

// countFramesRead counts k frames extend read at off through wal, from the
// file unless the VFS's record holds them.
func countFramesRead(wal io.ReaderAt, off int64, n int, k uint32) {
	if w, ok := wal.(*writtenWAL); !ok || !w.covers(off, n) {
		walFramesFromFile.Add(int64(k))
	}
}

// writtenWAL reads the -wal, serving a read that lies within the bytes the
// committing connection wrote during the hold, b at offset off, from them.
type writtenWAL struct {
	file io.ReaderAt
	b    []byte
	off  int64
}

// covers reports whether [off, off+n) lies within the recorded bytes.
func (w *writtenWAL) covers(off int64, n int) bool {
	return off >= w.off && off-w.off <= int64(len(w.b)) && int64(n) <= int64(len(w.b))-(off-w.off)
}

func (w *writtenWAL) ReadAt(p []byte, off int64) (int, error) {
	if w.covers(off, len(p)) {
		return copy(p, w.b[off-w.off:]), nil
	}
	return w.file.ReadAt(p, off)
}

// frameBuf holds n whole frames from frame first, as read and validated
// by walState.extend (n is 0 while a read is in progress or failed).
type frameBuf struct {
	b        []byte
	first, n uint32
	frameLen int
}

// reset returns a buffer of size bytes, reusing the kept one, with no
// frame held.
func (fb *frameBuf) reset(size int) []byte {
	fb.forget()
	if cap(fb.b) < size {
		fb.b = make([]byte, size)
	}
	return fb.b[:size]
}

// forget says the buffer holds no frame (its bytes are being replaced).
func (fb *frameBuf) forget() { fb.n = 0 }

// hold says the buffer now holds the k validated frames from frame first.
func (fb *frameBuf) hold(first, k uint32, frameLen int) {
	fb.first, fb.n, fb.frameLen = first, k, frameLen
}

// page returns the page bytes of frame f when the buffer holds it, else nil.
func (fb *frameBuf) page(f uint32) []byte {
	if fr := fb.frame(f); fr != nil {
		return fr[walFrameHdrLen:]
	}
	return nil
}

// frame returns the bytes of frame f (header and page) when the buffer
// holds it, else nil.
func (fb *frameBuf) frame(f uint32) []byte {
	if fb.n == 0 || f < fb.first || f-fb.first >= fb.n {
		return nil
	}
	off := int(f-fb.first) * fb.frameLen
	return fb.b[off : off+fb.frameLen]
}

// release drops a buffer larger than keptFrameBuf (after the capture).
func (fb *frameBuf) release() {
	if cap(fb.b) > keptFrameBuf {
		*fb = frameBuf{}
	}
}
