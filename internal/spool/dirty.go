package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DirtyDirName is the directory of a spool root holding one empty marker
// file per database whose staged manifest may not be uploaded yet:
// ROOT/dirty/KEY. Publish creates the marker before it publishes a
// manifest (so a crash right after the publish leaves it) and checks it
// again after; a copier removes it once it found the staged manifest
// uploaded (ClearDirty). A copier's periodic scan reads this directory,
// so its work follows the databases that changed, whichever process
// committed them, and not every database ever spooled.
const DirtyDirName = "dirty"

// afterMarkHook, when set (by tests), runs in Publish between making the
// marker and publishing.
var afterMarkHook func()

// DirtyDir returns the directory of the dirty markers of root.
func DirtyDir(root string) string { return filepath.Join(root, DirtyDirName) }

// rootOf returns the spool root of d (d.Path is ROOT/dbs/KEY).
func (d *Dir) rootOf() string { return filepath.Dir(filepath.Dir(d.Path)) }

// MarkDirty makes sure the dirty marker of key exists: one stat(2) when
// it does.
func MarkDirty(root, key string) error {
	p := filepath.Join(DirtyDir(root), key)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(DirtyDir(root), 0o700); err == nil {
			f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("spool: mark %s dirty: %w", key, err)
	}
	return f.Close()
}

// DirtyKeys returns the keys marked dirty under root (none when the
// directory does not exist).
func DirtyKeys(root string) ([]string, error) {
	f, err := os.Open(DirtyDir(root))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spool: read dirty markers: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("spool: read dirty markers: %w", err)
	}
	keys := names[:0]
	for _, n := range names {
		if n != "" && n[0] != '.' {
			keys = append(keys, n)
		}
	}
	return keys, nil
}

// ClearDirty removes the dirty marker of key, whose staged manifest was
// found uploaded with stamp clean. A manifest published meanwhile either
// shows in the stamp read after the removal (the marker is made again) or
// was published after that read, and then its writer's check after
// publishing finds the marker gone and makes it again. A spool that no
// longer exists has its marker removed.
func ClearDirty(root, key string, clean Stamp) error {
	if err := os.Remove(filepath.Join(DirtyDir(root), key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: clear dirty marker of %s: %w", key, err)
	}
	d := &Dir{Path: filepath.Join(DBsDir(root), key), Key: key}
	stamp, err := d.ManifestStamp()
	if err != nil || stamp == clean {
		return nil // gone, or unreadable (a later publish marks it)
	}
	if _, err := os.Stat(d.Path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return MarkDirty(root, key)
}
