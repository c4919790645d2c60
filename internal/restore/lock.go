package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// SQLite's unix VFS locks a database with POSIX record locks on the lock
// page (os_unix.c): a reader holds a read lock on one byte of the SHARED
// range, a writer a write lock on RESERVED, PENDING while it waits for
// readers to leave, and the whole SHARED range (EXCLUSIVE) while it writes.
const (
	pendingByte  = 0x40000000
	reservedByte = pendingByte + 1
	sharedFirst  = pendingByte + 2
	sharedSize   = 510
	// shmDMS is the byte of a -shm file that every open WAL connection
	// holds a read lock on (the "dead man switch").
	shmDMS = 128
)

// lockDatabase opens the database at path and takes RESERVED, PENDING and
// EXCLUSIVE as a writer would, waiting up to timeout for connections to
// leave; the returned file holds the locks until it is closed. On error it
// may return a file holding some of them (close it), or nil.
func lockDatabase(ctx context.Context, path string, timeout time.Duration) (*os.File, error) {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	type step struct {
		what        string
		start, size int64
		// take: a read lock (readOnly) or a write lock; else only test
		// that nobody holds a lock a write lock would conflict with.
		take bool
	}
	steps := []step{
		{"RESERVED", reservedByte, 1, true},
		{"PENDING", pendingByte, 1, true},
		{"EXCLUSIVE", sharedFirst, sharedSize, true},
	}
	readOnly := false
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrPermission) && ownedByMe(path) {
		// A file its owner made read-only (0444): write locks need it
		// open for writing. Read locks on PENDING and SHARED keep any
		// writer from committing (EXCLUSIVE) until the rename; RESERVED
		// and the readers' SHARED are tested free, as a writer's locks
		// would require. Only root can write such a file anyway.
		readOnly = true
		steps = []step{
			{"PENDING", pendingByte, 1, true},
			{"EXCLUSIVE", sharedFirst, sharedSize, true},
			{"RESERVED", reservedByte, 1, false},
			{"EXCLUSIVE", sharedFirst, sharedSize, false},
		}
		f, err = os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open to lock it: %w", err) // *fs.PathError names path
	}
	deadline := time.Now().Add(timeout)
	for _, r := range steps {
		for {
			var held bool
			var err error
			switch {
			case !r.take:
				held, err = unlocked(f, r.start, r.size)
			case readOnly:
				held, err = setLock(f, unix.F_RDLCK, r.start, r.size)
			default:
				held, err = writeLock(f, r.start, r.size)
			}
			if err != nil {
				return f, fmt.Errorf("lock %s (%s): %w", path, r.what, err)
			}
			if held {
				break
			}
			if time.Now().After(deadline) {
				return park(f), fmt.Errorf("%w: a SQLite connection holds a lock on %s (no %s lock after %v); stop the application first",
					ErrInUse, path, r.what, timeout)
			}
			select {
			case <-ctx.Done():
				return park(f), ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return f, nil
}

// ownedByMe says the file at path is the current user's.
func ownedByMe(path string) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil && int(st.Uid) == os.Geteuid()
}

// lockShm takes a write lock on the -shm file's DMS byte, which fails while
// any WAL connection has the database open. It returns nil, nil when there
// is no -shm file.
func lockShm(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if absent(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s: %w", path, kind(fi.Mode()), ErrNotRegular)
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s to lock it: %w", path, err)
	}
	held, err := writeLock(f, shmDMS, 1)
	if err != nil {
		return f, fmt.Errorf("lock %s: %w", path, err)
	}
	if !held {
		return park(f), fmt.Errorf("%w: a SQLite connection in WAL mode has it open (%s is locked); stop the application first", ErrInUse, path)
	}
	return f, nil
}

// parked keeps descriptors open that must not be closed: see park.
var parked struct {
	sync.Mutex
	files []*os.File
}

// park releases f's locks but keeps it open for the life of the process,
// and returns nil. The lock that f could not get may be a classic POSIX
// lock of a SQLite connection of this process, and closing any descriptor
// of a file drops every classic lock the process holds on it (SQLite keeps
// such descriptors open for the same reason). It costs one descriptor per
// refusal, only when the destination was in use.
func park(f *os.File) *os.File {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		// Closing is then the only way to release them.
		f.Close()
		return nil
	}
	parked.Lock()
	parked.files = append(parked.files, f)
	parked.Unlock()
	return nil
}

// writeLock tries a write lock on [start, start+size): false if another
// holds a conflicting lock. It is an open file description lock: those
// conflict with the classic POSIX locks SQLite takes, also with ones of
// this very process (which classic locks would silently share), and closing
// f releases only them (closing a descriptor with classic locks would drop
// every lock this process holds on the file, its SQLite connections' too).
func writeLock(f *os.File, start, size int64) (bool, error) {
	return setLock(f, unix.F_WRLCK, start, size)
}

// setLock tries an open file description lock of type typ (F_RDLCK or
// F_WRLCK) on [start, start+size); see writeLock.
func setLock(f *os.File, typ int16, start, size int64) (bool, error) {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: size}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	return err == nil, err
}

// unlocked says that nobody else holds a lock on [start, start+size) that a
// write lock would conflict with (F_OFD_GETLK, which needs no write access:
// it sees SQLite's classic locks, also this process's).
func unlocked(f *os.File, start, size int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: start, Len: size}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type == unix.F_UNLCK, nil
}
