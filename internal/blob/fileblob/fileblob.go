// Package fileblob implements blob.Store on a local directory, for target
// URLs of the form file:///ABSOLUTE/DIR. It is the embedded default target.
//
// Each key is a file under the root: key "a/b/c" is ROOT/a/b/c. Writes go to
// a temporary file in the destination directory, which is fsynced and renamed
// over the final name, and the directory is fsynced, so readers see the old or
// the new bytes and a completed Put survives a crash.
//
// A version (see blob.Store.GetVersioned) is the hex SHA-256 of the content.
// PutIf is atomic across goroutines and processes: writers of a key serialise
// on an flock(2) of a lock file under ROOT/.verneuil-locks (one of 256 lock
// files chosen by a hash of the key), compare, then rename.
//
// Limitations compared with S3: a key cannot also be a directory of another
// key ("a" and "a/b" cannot both exist), each key segment must fit the file
// system's name limit (usually 255 bytes), and segments starting with
// ".verneuil-" are reserved for the store's own files.
//
// Files are created 0600 and directories 0700 (replicas hold the databases'
// data), and the root must be a real directory owned by the current user
// (config.CheckOwnedDir).
package fileblob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
)

// reservedPrefix starts the names of the store's own files (temporary files
// and the lock directory). Keys may not contain segments with this prefix.
const reservedPrefix = ".verneuil-"

const (
	lockDirName = reservedPrefix + "locks"
	tmpPrefix   = reservedPrefix + "tmp-"
	lockStripes = 256
)

func init() {
	blob.Register("file", openURL)
}

// Store is a blob.Store on a local directory.
type Store struct {
	root string // with symlinks resolved
	name string // as given, for messages
}

var _ blob.Store = (*Store)(nil)

func openURL(_ context.Context, u *url.URL, _ blob.Options) (blob.Store, error) {
	if u.Opaque != "" {
		return nil, fmt.Errorf("file target must be file:///ABSOLUTE/DIR, got a relative path %q", u.Opaque)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("file target: unsupported host %q (use file:///ABSOLUTE/DIR)", u.Host)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("file target: user info, query and fragment are not supported (use file:///ABSOLUTE/DIR)")
	}
	if u.Path == "" {
		return nil, errors.New("file target: missing directory (use file:///ABSOLUTE/DIR)")
	}
	return OpenDir(u.Path, false)
}

// OpenDir opens a store rooted at the absolute directory root. When create
// is true, the directory and its parents are created if missing; otherwise a
// missing directory is an error.
func OpenDir(root string, create bool) (*Store, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("target directory %q is not an absolute path", root)
	}
	root = filepath.Clean(root)
	if create {
		if err := mkdirAllSync(root); err != nil {
			return nil, fmt.Errorf("create target directory %s: %w", root, err)
		}
	}
	fi, err := os.Stat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("target directory %s does not exist", root)
	}
	if err != nil {
		return nil, fmt.Errorf("target directory %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("target %s is not a directory", root)
	}
	// Replicas hold the databases' data: refuse a root another user
	// controls, or a symlink that may have been planted to redirect them.
	if err := config.CheckOwnedDir(root); err != nil {
		return nil, fmt.Errorf("target directory: %w", err)
	}
	// Resolve symlinks so that directory walks start at a real directory.
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("target directory %s: %w", root, err)
	}
	return &Store{root: resolved, name: root}, nil
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.name }

// String implements blob.Store.
func (s *Store) String() string { return "file://" + s.name }

// Close implements blob.Store. It holds no resources.
func (s *Store) Close() error { return nil }

// path validates key and returns its file name.
func (s *Store) path(key string) (string, error) {
	if err := blob.ValidKey(key); err != nil {
		return "", err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(seg, reservedPrefix) {
			return "", fmt.Errorf("invalid key %q: segments starting with %q are reserved by the file target", key, reservedPrefix)
		}
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// notFound reports whether err means that no object exists at a path:
// ENOENT, or ENOTDIR when a parent "directory" is really an object.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// openObject opens the object file for key for reading. A directory is not
// an object.
func (s *Store) openObject(key string) (*os.File, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if notFound(err) {
		return nil, blob.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, blob.ErrNotFound
	}
	return f, nil
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	f, err := s.openObject(key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer f.Close()
	data, err := readAll(f)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return data, nil
}

func readAll(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > blob.MaxObjectSize {
		return nil, fmt.Errorf("%d-byte file: %w", fi.Size(), blob.ErrTooLarge)
	}
	// The file is never modified in place (writers rename over it), so its
	// size is stable; ReadAll copes anyway if it is not.
	buf := make([]byte, 0, fi.Size()+1)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) > blob.MaxObjectSize {
			return nil, fmt.Errorf("file grew past %d bytes: %w", blob.MaxObjectSize, blob.ErrTooLarge)
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
	}
}

// GetRange implements blob.Store.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("get %s: invalid range offset %d length %d", key, offset, length)
	}
	f, err := s.openObject(key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if offset >= fi.Size() {
		return []byte{}, nil
	}
	length = min(length, fi.Size()-offset)
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, offset)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("get %s at %d: %w", key, offset, err)
	}
	return buf[:n], nil
}

// GetVersioned implements blob.Store. The version is the hex SHA-256 of the
// content.
func (s *Store) GetVersioned(ctx context.Context, key string) ([]byte, string, error) {
	data, err := s.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	return data, version(data), nil
}

func version(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Exists implements blob.Store.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("exists %s: %w", key, err)
	}
	p, err := s.path(key)
	if err != nil {
		return false, fmt.Errorf("exists %s: %w", key, err)
	}
	fi, err := os.Stat(p)
	if notFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("exists %s: %w", key, err)
	}
	return fi.Mode().IsRegular(), nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := s.put(ctx, key, data, nil); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// PutIf implements blob.Store.
func (s *Store) PutIf(ctx context.Context, key string, data []byte, ifVersion string) error {
	check := func(p string) error {
		f, err := os.Open(p)
		if notFound(err) {
			if ifVersion == "" {
				return nil
			}
			return fmt.Errorf("object does not exist, expected version %s: %w", ifVersion, blob.ErrPrecondition)
		}
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		if ifVersion == "" {
			return fmt.Errorf("object exists: %w", blob.ErrPrecondition)
		}
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		if cur := hex.EncodeToString(h.Sum(nil)); cur != ifVersion {
			return fmt.Errorf("version is %s, expected %s: %w", cur, ifVersion, blob.ErrPrecondition)
		}
		return nil
	}
	if err := s.put(ctx, key, data, check); err != nil {
		return fmt.Errorf("put-if %s: %w", key, err)
	}
	return nil
}

// put writes data to a temporary file next to key's file, then, holding the
// key's lock, runs check (if any) and renames the temporary file into place.
func (s *Store) put(ctx context.Context, key string, data []byte, check func(path string) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	tmp, err := s.writeTemp(dir, data)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := s.lock(key)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(p); err != nil {
			unlock()
			return err
		}
	}
	err = os.Rename(tmp, p)
	unlock()
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// writeTemp writes data to a new fsynced temporary file in dir, creating dir
// and its parents if needed, and returns the file's name.
func (s *Store) writeTemp(dir string, data []byte) (string, error) {
	var suffix [12]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", err
	}
	name := filepath.Join(dir, tmpPrefix+hex.EncodeToString(suffix[:]))
	var f *os.File
	var err error
	// A concurrent Delete may remove a directory as soon as it is empty,
	// including between our mkdir and create: retry a few times.
	for range 10 {
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		// mkdir of a parent removed meanwhile fails the same way.
		if err = s.mkdirAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// mkdirAll creates dir (inside the root) and its missing parents, fsyncing
// each parent whose entries changed so the new directories are durable.
func (s *Store) mkdirAll(dir string) error {
	if dir == s.root {
		return nil
	}
	// Never recreate the root: a target directory that vanished (an
	// unmounted volume, a mistaken rm) is an error, not a fresh store.
	if _, err := os.Stat(s.root); err != nil {
		return fmt.Errorf("target directory %s: %w", s.root, err)
	}
	return mkdirAllSync(dir)
}

func mkdirAllSync(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// lock takes the exclusive flock that serialises writers of key, across
// goroutines (each call opens its own file description) and processes.
func (s *Store) lock(key string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(key))
	dir := filepath.Join(s.root, lockDirName)
	name := filepath.Join(dir, hex.EncodeToString(sum[:1]))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create lock directory: %w", err)
		}
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}

// Delete implements blob.Store. Directories left empty are removed.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	dirs := map[string]bool{}
	var errs []error
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", key, err))
			break
		}
		dir, err := s.deleteOne(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", key, err))
			continue
		}
		if dir != "" {
			dirs[dir] = true
		}
	}
	for dir := range dirs {
		if err := s.removeEmptyDirs(dir); err != nil {
			errs = append(errs, fmt.Errorf("delete: %w", err))
		}
	}
	return errors.Join(errs...)
}

// deleteOne removes key's file and returns its directory, or "" when there
// was nothing to remove.
func (s *Store) deleteOne(key string) (string, error) {
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	unlock, err := s.lock(key)
	if err != nil {
		return "", err
	}
	err = unix.Unlink(p)
	unlock()
	switch {
	case err == nil:
		return filepath.Dir(p), nil
	case notFound(err), err == unix.EISDIR:
		return "", nil
	default:
		return "", &fs.PathError{Op: "unlink", Path: p, Err: err}
	}
}

// removeEmptyDirs fsyncs dir, then removes it and its parents below the root
// while they are empty.
func (s *Store) removeEmptyDirs(dir string) error {
	for dir != s.root && strings.HasPrefix(dir, s.root+string(filepath.Separator)) {
		err := unix.Rmdir(dir)
		if err == unix.ENOTEMPTY || err == unix.EEXIST {
			// A concurrent Delete may empty and remove dir before it is
			// opened: that Delete then syncs the parents itself.
			if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		if err != nil && err != unix.ENOENT {
			return &fs.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		dir = filepath.Dir(dir)
	}
	if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// List implements blob.Store. Keys come back in byte order, like S3.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	// Walk only the deepest directory the prefix names. A prefix that is not
	// a valid key path (e.g. with "..") falls back to the whole tree, whose
	// keys are then filtered; nothing outside the root is ever read.
	start := s.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		if d := prefix[:i]; blob.ValidKey(d) == nil {
			start = filepath.Join(s.root, filepath.FromSlash(d))
		}
	}
	keys := []string{}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if notFound(err) {
				// The start directory does not exist, or an entry
				// vanished under a concurrent Delete.
				return nil
			}
			return err
		}
		if p == start {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), reservedPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Prune directories that can hold no matching key.
			if dk := key + "/"; !strings.HasPrefix(dk, prefix) && !strings.HasPrefix(prefix, dk) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q in %s: %w", prefix, s.root, err)
	}
	slices.Sort(keys)
	return keys, nil
}
