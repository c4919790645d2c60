package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ReclaimedDirName is the directory under the spool root where a
// reclaimed spool is renamed before it is removed, so that a crash
// in the middle of the removal leaves nothing under DBsDirName.
const ReclaimedDirName = "reclaimed"

// Reclaim removes the spool of key when its database is gone and nothing
// in it is pending: the database file (db.json's path) does not exist,
// the staged manifest (if any) is the one recorded as uploaded to the
// targets covers accepts, and the spool was not written (nor a rescan
// asked for) for minIdle. It holds the spool's upload lock and lock while it
// re-checks all that, and moves the directory out of DBsDirName before
// removing it. A tracker still holding the spool (a process that has the
// deleted file open) recreates it at its next lock and rescans (see
// lockFile). It reports whether the spool was removed.
func Reclaim(root, key string, minIdle time.Duration, covers func(*Dir) bool) (bool, error) {
	done, err := reclaim(root, key, minIdle, covers)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // another process reclaimed it first
	}
	return done, err
}

func reclaim(root, key string, minIdle time.Duration, covers func(*Dir) bool) (bool, error) {
	d, err := Existing(root, key)
	if err != nil {
		return false, err
	}
	if !d.reclaimable(minIdle, covers) {
		return false, nil
	}
	unlockUp, err := d.UploadLock(false)
	if err != nil || unlockUp == nil {
		return false, err
	}
	defer unlockUp()
	unlock, err := d.TryLock(0)
	if err != nil || unlock == nil {
		return false, err
	}
	defer unlock()
	// Again under the locks: a writer may have published meanwhile, or
	// the database may have been re-created at its path.
	if !d.reclaimable(minIdle, covers) {
		return false, nil
	}
	trash := filepath.Join(root, ReclaimedDirName)
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return false, fmt.Errorf("reclaim spool %s: %w", d.Path, err)
	}
	dst := filepath.Join(trash, key+"."+strconv.Itoa(os.Getpid())+"."+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(d.Path, dst); err != nil {
		return false, fmt.Errorf("reclaim spool %s: %w", d.Path, err)
	}
	if err := os.RemoveAll(dst); err != nil {
		return true, fmt.Errorf("reclaim spool %s: remove %s: %w", d.Path, dst, err)
	}
	return true, nil
}

// SweepReclaimed removes what a reclaim interrupted by a crash left under
// the spool root's ReclaimedDirName.
func SweepReclaimed(root string) error {
	trash := filepath.Join(root, ReclaimedDirName)
	ents, err := os.ReadDir(trash)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sweep reclaimed spools: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(trash, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reclaimable checks every condition of Reclaim; any doubt (an error, a
// damaged file) keeps the spool. A rescan asked for (RescanFile,
// RescanMarker) only counts as a write: only a process that still has the
// deleted file open could honour it, and its next commit recreates the
// spool and asks again; a pending rescan that blocked the reclaim would
// keep the spool forever once that process is gone (a revived spool asks
// for one that its last commit leaves pending). A rescan that lost staged
// data leaves a version to upload, which keeps the spool.
func (d *Dir) reclaimable(minIdle time.Duration, covers func(*Dir) bool) bool {
	info, err := d.Info()
	if err != nil || info.Path == "" {
		return false
	}
	if _, err := os.Lstat(info.Path); !errors.Is(err, fs.ErrNotExist) {
		return false // still there, or not known to be gone
	}
	newest := time.Time{}
	for _, name := range []string{InfoFile, ManifestFile, UploadedFile, RescanFile, RescanMarker, ChunksDir} {
		st, err := os.Stat(filepath.Join(d.Path, name))
		switch {
		case err == nil && st.ModTime().After(newest):
			newest = st.ModTime()
		case err == nil:
		case !errors.Is(err, fs.ErrNotExist):
			return false
		}
	}
	if time.Since(newest) < minIdle {
		return false
	}
	m, _, err := d.Manifest()
	if err != nil {
		return false
	}
	if m == nil {
		return true // never committed: nothing to upload
	}
	up, _, err := d.Uploaded()
	return err == nil && !NeedsUpload(m, up) && covers(d)
}

// lockFile opens name (a lock file of the spool) and takes its flock with
// how, checking that the file locked is still the one at its path: a
// spool reclaimed meanwhile (Reclaim moved it away while this process
// waited) is not locked. A Dir from Open then recreates its spool, with a
// rescan marker (its staged state went with the old one), and tries
// again; others get fs.ErrNotExist. It returns (nil, nil) when how has
// LOCK_NB and the lock is held elsewhere.
func (d *Dir) lockFile(name string, how int) (*os.File, error) {
	for range 3 {
		f, err := os.OpenFile(filepath.Join(d.Path, name), os.O_RDWR|os.O_CREATE, 0o600)
		if errors.Is(err, fs.ErrNotExist) && d.revive() {
			continue
		}
		if err != nil {
			return nil, err
		}
		for {
			err = syscall.Flock(int(f.Fd()), how)
			if !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		if err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, err
		}
		if d.sameFile(f, name) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("%s: %w (the spool was reclaimed)", d.Path, fs.ErrNotExist)
}

// sameFile reports whether f is still the file name of the spool.
func (d *Dir) sameFile(f *os.File, name string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(filepath.Join(d.Path, name))
	return err == nil && os.SameFile(a, b)
}

// revive recreates the spool of a Dir from Open after it was reclaimed
// under it, asking for a rescan. It reports whether it did.
func (d *Dir) revive() bool {
	info := d.opened.Load()
	if info == nil {
		return false
	}
	for _, sub := range []string{ChunksDir, TmpDir} {
		if err := os.MkdirAll(filepath.Join(d.Path, sub), 0o700); err != nil {
			return false
		}
	}
	if _, err := os.Stat(filepath.Join(d.Path, InfoFile)); errors.Is(err, fs.ErrNotExist) {
		data, _ := json.Marshal(*info)
		if d.writeAtomic(InfoFile, data) != nil {
			return false
		}
	}
	return d.MarkRescan("spool reclaimed while the database was in use") == nil
}
