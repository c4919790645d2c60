package names

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
)

// maxSymlinks is SQLite's SQLITE_MAX_SYMLINK: the number of symlinks one
// path resolution may follow.
const maxSymlinks = 200

// Canonical returns the absolute path of the file SQLite's unix VFS opens for
// path: the path SQLite's full-pathname method computes, element by element.
// A relative path starts from the physical working directory (getcwd, not
// $PWD); "." is skipped; each other element is appended and, when it is a
// symlink, replaced by its target (an absolute target restarts from "/")
// before the next element is looked at, so that ".." after a symlink goes to
// the parent of the symlink's target, not to the symlink's directory. An
// element that does not exist is kept as it is (the database may not exist
// yet). Any other lstat or readlink error, or more than 200 symlinks, is an
// error, as SQLite then refuses to open the database.
func Canonical(path string) (string, error) {
	if path == "" {
		return "", errors.New("canonical path: empty path")
	}
	r := resolver{}
	if path[0] != '/' {
		wd, err := syscall.Getwd() // getcwd(3): the physical directory
		if err != nil {
			return "", fmt.Errorf("canonical path of %s: working directory: %w", path, err)
		}
		if err := r.appendAll(wd); err != nil {
			return "", fmt.Errorf("canonical path of %s: working directory %s: %w", path, wd, err)
		}
	}
	if err := r.appendAll(path); err != nil {
		return "", fmt.Errorf("canonical path of %s: %w", path, err)
	}
	if r.out == "" {
		return "/", nil
	}
	return r.out, nil
}

// resolver is SQLite's DbPath: the path resolved so far ("" or "/a/b", never
// ending in "/") and the number of symlinks followed.
type resolver struct {
	out      string
	symlinks int
}

// appendAll appends every element of p, as SQLite's appendAllPathElements.
func (r *resolver) appendAll(p string) error {
	for _, name := range strings.Split(p, "/") {
		if name == "" {
			continue
		}
		if err := r.appendOne(name); err != nil {
			return err
		}
	}
	return nil
}

// appendOne appends one element, as SQLite's appendOnePathElement.
func (r *resolver) appendOne(name string) error {
	switch name {
	case ".":
		return nil
	case "..":
		if i := strings.LastIndexByte(r.out, '/'); i >= 0 {
			r.out = r.out[:i]
		}
		return nil
	}
	r.out += "/" + name
	st, err := os.Lstat(r.out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err // *fs.PathError names the path
	case st.Mode()&fs.ModeSymlink == 0:
		return nil
	}
	r.symlinks++
	if r.symlinks > maxSymlinks {
		return fmt.Errorf("%s: more than %d symbolic links", r.out, maxSymlinks)
	}
	target, err := os.Readlink(r.out)
	if err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("%s: empty symbolic link", r.out)
	}
	if target[0] == '/' {
		r.out = ""
	} else {
		r.out = r.out[:len(r.out)-len(name)-1]
	}
	return r.appendAll(target)
}

// Override returns the replica name that overrides maps (database path →
// name, as the configuration's names) to the database whose canonical path
// is canon: the entry for canon itself, or else one whose key designates
// that file when resolved now as SQLite resolves paths (a key written
// through a symbolic link, such as /var/db/app.db with /var/db -> /srv/db,
// applies to /srv/db/app.db); among several, the first key in sorted order.
func Override(overrides map[string]string, canon string) (string, bool) {
	if n, ok := overrides[canon]; ok {
		return n, true
	}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if c, err := Canonical(k); err == nil && c == canon {
			return overrides[k], true
		}
	}
	return "", false
}
