package sqlite3vfs

import (
	"errors"
	"io"
	"syscall"
)

// walFD reads the -wal through a descriptor the VFS duplicated for one
// WAL capture (shimwalfile.c) and closes when the capture returns: Go
// neither owns nor closes it. ReadAt has os.File's contract: io.EOF when
// the file ends before p is full.
type walFD int

func (fd walFD) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k, err := syscall.Pread(int(fd), p[n:], off+int64(n))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return n, &pathError{op: "pread", err: err}
		}
		if k == 0 {
			return n, io.EOF
		}
		n += k
	}
	return n, nil
}

// pathError names the -wal descriptor in a read error.
type pathError struct {
	op  string
	err error
}

func (e *pathError) Error() string { return e.op + " -wal: " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }
