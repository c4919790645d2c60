package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// Options says what ToFileWith may do to an existing destination.
type Options struct {
	// Replace allows replacing an existing regular file.
	Replace bool
	// MoveAside renames a hot rollback journal, a -wal file (and the -shm
	// beside it) of the destination to NAME-journal.verneuil-moved-TIME
	// (and so on) instead of refusing: SQLite would otherwise apply them to
	// the restored file the first time it opens it.
	MoveAside bool
	// BusyTimeout bounds the wait for SQLite connections to release their
	// locks on the destination; 0 means 2 seconds.
	BusyTimeout time.Duration
	// MovedAside, when set, is told each file moved aside and its new
	// name (which, for a long database name, does not start with it).
	MovedAside func(from, to string)
}

// Errors that ToFileWith's refusals match (errors.Is).
var (
	// ErrExists: the destination exists and Options.Replace is false.
	ErrExists = errors.New("already exists")
	// ErrNotRegular: the destination is a directory, a device, a pipe...
	ErrNotRegular = errors.New("not a regular file")
	// ErrHotJournal: a hot journal or a -wal file is beside the
	// destination and Options.MoveAside is false.
	ErrHotJournal = errors.New("hot journal")
	// ErrInUse: a SQLite connection holds a lock on the destination.
	ErrInUse = errors.New("database is in use")
)

// ToFile restores m to path, replacing an existing regular file, and
// refusing if a hot journal is beside it; see ToFileWith.
func ToFile(ctx context.Context, s blob.Store, m *manifest.Manifest, path string) error {
	return ToFileWith(ctx, s, m, path, Options{Replace: true})
}

// ToFileWith restores m to path atomically: a temp file in the same
// directory is written and fsynced, then, holding SQLite's locks on the
// existing file as a writer does (so no connection is in a transaction),
// renamed over path, and the directory fsynced. A symlink at path is
// followed (its target is replaced); anything but a regular file is
// refused; a replaced file's mode, and its owner when the caller is root or
// owns it, are kept. path "-" writes to stdout.
func ToFileWith(ctx context.Context, s blob.Store, m *manifest.Manifest, path string, opts Options) error {
	if path == "-" {
		return toStream(ctx, s, m, os.Stdout)
	}
	target, err := resolve(path)
	if err != nil {
		return fmt.Errorf("restore to %s: %w", path, err)
	}
	// Refuse early, before fetching anything; install checks again.
	if _, _, err := check(path, target, opts); err != nil {
		return err
	}
	// A fixed-length temp name: any valid destination name fits beside it.
	tmp, err := os.CreateTemp(filepath.Dir(target), ".verneuil-restore-*")
	if err != nil {
		return fmt.Errorf("restore to %s: %w", path, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // fails harmlessly once renamed
	}()
	if err := Write(ctx, s, m, tmp, 8); err != nil {
		return fmt.Errorf("restore to %s: %w", path, err)
	}
	if err := tmp.Truncate(m.Length); err != nil {
		return fmt.Errorf("restore to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("restore to %s: fsync: %w", path, err)
	}
	return install(ctx, path, target, tmp, opts)
}

// install renames tmp over target under SQLite's locks, moving journals
// aside first when allowed.
func install(ctx context.Context, path, target string, tmp *os.File, opts Options) error {
	var held []*os.File // closing a descriptor releases its locks
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	old, _, err := check(path, target, Options{Replace: opts.Replace, MoveAside: true})
	if err != nil {
		return err
	}
	if old != nil {
		f, err := lockDatabase(ctx, target, opts.BusyTimeout)
		if f != nil {
			held = append(held, f)
		}
		if err != nil {
			return fmt.Errorf("restore to %s: %w", path, err)
		}
		locked, err := f.Stat()
		if err != nil {
			return fmt.Errorf("restore to %s: %w", path, err)
		}
		if !os.SameFile(locked, old) {
			return fmt.Errorf("restore to %s: %s was replaced while restoring", path, target)
		}
		if err := keepOwnerAndMode(tmp, locked); err != nil {
			return fmt.Errorf("restore to %s: %w", path, err)
		}
	}
	if f, err := lockShm(target + "-shm"); f != nil || err != nil {
		if f != nil {
			held = append(held, f)
		}
		if err != nil {
			return fmt.Errorf("restore to %s: %w", path, err)
		}
	}
	// Under the locks, nobody can create or finish a journal any more.
	old2, sides, err := check(path, target, opts)
	if err != nil {
		return err
	}
	if (old2 == nil) != (old == nil) || old != nil && !os.SameFile(old, old2) {
		return fmt.Errorf("restore to %s: %s was replaced while restoring", path, target)
	}
	dir := filepath.Dir(target)
	if len(sides) > 0 {
		// Journals go first: a crash in between leaves the old database
		// without its journal (re-run the restore), never the restored
		// one with a stale journal.
		for _, side := range sides {
			to, err := moveAside(side)
			if err != nil {
				return fmt.Errorf("restore to %s: move %s aside: %w", path, side, err)
			}
			if opts.MovedAside != nil {
				opts.MovedAside(side, to)
			}
		}
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("restore to %s: %w", path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("restore to %s: %w", path, err)
	}
	if old != nil {
		err = os.Rename(tmp.Name(), target)
	} else {
		err = renameNoReplace(tmp.Name(), target)
	}
	if err != nil {
		return fmt.Errorf("restore to %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("restore to %s: %w", path, err)
	}
	return nil
}

// check refuses a destination that is not a regular file, one with a hot
// journal or -wal beside it (unless opts.MoveAside; then it lists them),
// and an existing one (unless opts.Replace). It returns the destination's
// FileInfo, nil if it does not exist.
func check(path, target string, opts Options) (fs.FileInfo, []string, error) {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		fi = nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("restore to %s: %w", path, err)
	} else if fi.IsDir() {
		return nil, nil, fmt.Errorf("restore to %s: %s is a directory (%w)", path, target, ErrNotRegular)
	} else if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("restore to %s: %s is a %s: %w", path, target, kind(fi.Mode()), ErrNotRegular)
	}
	sides, err := sideFiles(target)
	if err != nil {
		return nil, nil, fmt.Errorf("restore to %s: %w", path, err)
	}
	if len(sides) > 0 && !opts.MoveAside {
		return nil, nil, fmt.Errorf("restore to %s: %w %s beside it (SQLite would apply it to the restored file)", path, ErrHotJournal, sides[0])
	}
	if fi != nil && !opts.Replace {
		return nil, nil, fmt.Errorf("restore to %s: %s %w", path, target, ErrExists)
	}
	return fi, sides, nil
}

// absent says err means a file does not exist; a name too long to exist
// (a side file of a long database name) does not either.
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENAMETOOLONG)
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// resolve returns the file to replace for path: the one SQLite opens for
// it, resolving symlinks element by element (also a dangling one at the
// end, and ".." after a symlink, which goes to the parent of the link's
// target), so that the temp file, the locks, the journal checks and the
// rename all concern that file's directory.
func resolve(path string) (string, error) {
	return names.Canonical(path)
}

// sideFiles lists the files beside target that SQLite would apply to a
// database at target: a hot rollback journal (not empty, first byte not
// zero, as SQLite decides), a non-empty -wal, and with it the -shm.
func sideFiles(target string) ([]string, error) {
	var sides []string
	j := target + "-journal"
	// Only a regular file (or a directory, refused below) is opened: a
	// named pipe would block the open.
	if fi, err := os.Stat(j); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		return nil, fmt.Errorf("%s is a %s, not a rollback journal: remove it (%w)", j, kind(fi.Mode()), ErrNotRegular)
	}
	if f, err := os.Open(j); err == nil {
		var b [1]byte
		n, err := f.Read(b[:])
		f.Close()
		if errors.Is(err, unix.EISDIR) {
			return nil, fmt.Errorf("%s is a directory, not a rollback journal: SQLite cannot open the database beside it; remove it (%w)", j, ErrNotRegular)
		}
		if err != nil && err != io.EOF {
			return nil, err // *fs.PathError names j
		}
		if n == 1 && b[0] != 0 {
			sides = append(sides, j)
		}
	} else if !absent(err) {
		return nil, fmt.Errorf("check %s: %w", j, err)
	}
	w := target + "-wal"
	if fi, err := os.Stat(w); err == nil && fi.Size() > 0 {
		sides = append(sides, w)
		if _, err := os.Lstat(target + "-shm"); err == nil {
			sides = append(sides, target+"-shm")
		}
	} else if err != nil && !absent(err) {
		return nil, fmt.Errorf("check %s: %w", w, err)
	}
	return sides, nil
}

// moveAside renames name to NAME.verneuil-moved-TIME (or, if that is too
// long a name, verneuil-moved-TIME-SUFFIX in the same directory), never
// replacing a file, and returns the new name.
func moveAside(name string) (string, error) {
	ts := time.Now().UTC().Format("20060102T150405Z")
	dir, base := filepath.Split(name)
	newBase := base + ".verneuil-moved-" + ts
	if len(newBase) > 240 {
		suffix := base[len(base)-min(len(base), 8):] // "-journal", "ite3-wal"...
		newBase = "verneuil-moved-" + ts + "-" + suffix
	}
	dst := filepath.Join(dir, newBase)
	for i := 2; ; i++ {
		err := renameNoReplace(name, dst)
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return dst, err
		}
		dst = filepath.Join(dir, fmt.Sprintf("%s-%d", newBase, i))
	}
}

// renameNoReplace renames old to new unless new exists.
func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// The file system cannot say; check, then rename.
		if _, err := os.Lstat(new); err == nil {
			return &os.LinkError{Op: "rename", Old: old, New: new, Err: fs.ErrExist}
		}
		return os.Rename(old, new)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return nil
}

// keepOwnerAndMode gives tmp the owner (when root or the same owner) and
// mode of old.
func keepOwnerAndMode(tmp *os.File, old fs.FileInfo) error {
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		if euid := os.Geteuid(); euid == 0 || int(st.Uid) == euid {
			if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("keep owner %d:%d: %w", st.Uid, st.Gid, err)
			}
		}
	}
	// After chown, which clears set-id bits.
	mode := old.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("keep mode %v: %w", mode, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

func toStream(ctx context.Context, s blob.Store, m *manifest.Manifest, w io.Writer) error {
	return eachChunk(ctx, s, m, func(_ int, data []byte) error {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write restored bytes: %w", err)
		}
		return nil
	})
}
