package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/manifest"
)

// Creating a file costs far more than writing one on some file systems
// (0.1 to 1 ms against 1 µs on ext4 here, most of the spool's cost at a
// commit a second per database), so the two files rewritten at every
// version reuse their inodes:
//
//   - the staged manifest is written into a spare file, tmp/manifest.spare,
//     which is then swapped with "manifest" by renameat2(RENAME_EXCHANGE):
//     readers see the old or the new file, as with rename(2), and the old
//     inode becomes the next spare. Its mtime is set to a value larger than
//     the previous manifest's, so that a Stamp (inode, size, mtime) never
//     repeats even though inodes alternate;
//   - "uploaded" is overwritten in place.
//
// A reader may therefore read a file while it is being rewritten (it
// opened "manifest" just before a swap, and the next publish reuses that
// inode). Every file is checksummed, so such a read fails to decode and is
// retried (ReadManifestFile); it never yields a wrong manifest. A file
// with several links (an "uploaded" hard-linked to a manifest by an older
// version of this code) is never rewritten in place. Where the file system
// lacks RENAME_EXCHANGE or nanosecond timestamps, publishing falls back to
// a new temp file and rename(2), which sets the same increasing times
// where it can; where times are coarser it sets whole seconds, which mark
// the stamp unreliable (Stamp.Reliable): an inode freed by the rename can
// come back with the same size and time, so readers then identify versions
// by content.

// simulateCoarseTimes makes publishing behave as on a file system without
// RENAME_EXCHANGE that keeps whole-second times (tests).
var simulateCoarseTimes atomic.Bool

// publishManifest makes encoded the staged manifest, cur being the file
// info of the current one (nil when there is none). It returns the file
// info of the published file, when known. The caller holds Lock, so the
// spare is this process's alone.
func (d *Dir) publishManifest(encoded []byte, cur fs.FileInfo) (fs.FileInfo, error) {
	if cur != nil && !d.noExchange.Load() && !simulateCoarseTimes.Load() {
		st, err := d.exchangeManifest(encoded, cur)
		if st != nil || err != nil {
			return st, err
		}
	}
	return d.renameManifest(encoded, cur)
}

// nextMTime returns the modification time of the next manifest: later than
// the current one's (cur, nil when there is none) and than now, and never
// a whole second (which marks coarse times: Stamp.Reliable).
func nextMTime(cur fs.FileInfo) time.Time {
	mtime := time.Now()
	if cur != nil {
		if floor := cur.ModTime().Add(time.Nanosecond); !mtime.After(floor) {
			mtime = floor
		}
	}
	if mtime.Nanosecond() == 0 {
		mtime = mtime.Add(time.Nanosecond)
	}
	return mtime
}

// setStampTime gives the file at path the modification time mtime, or,
// where the file system does not keep it exactly, the whole second before
// it (so that the stamp reads as unreliable), and returns its file info.
func setStampTime(path string, mtime time.Time) (fs.FileInfo, error) {
	set := func(t time.Time) (fs.FileInfo, error) {
		ts := unix.NsecToTimespec(t.UnixNano())
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, 0); err != nil {
			return nil, err
		}
		return os.Stat(path)
	}
	if !simulateCoarseTimes.Load() {
		st, err := set(mtime)
		if err != nil || st.ModTime().Equal(mtime) {
			return st, err
		}
	}
	return set(mtime.Truncate(time.Second))
}

// renameManifest publishes encoded as a new file renamed over the current
// manifest (whose file info is cur, nil when there is none) and returns
// the file info of the published file.
func (d *Dir) renameManifest(encoded []byte, cur fs.FileInfo) (fs.FileInfo, error) {
	f, err := os.CreateTemp(filepath.Join(d.Path, TmpDir), "manifest.*")
	if err != nil {
		return nil, fmt.Errorf("spool publish %s: %w", d.Path, err)
	}
	tmp := f.Name()
	_, err = f.Write(encoded)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var st fs.FileInfo
	if err == nil {
		st, err = setStampTime(tmp, nextMTime(cur))
	}
	if err == nil {
		failpoint.Hit("publish-before-rename")
		err = os.Rename(tmp, filepath.Join(d.Path, ManifestFile))
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("spool publish %s: %w", d.Path, err)
	}
	// The rename keeps the inode, size and mtime: the stamp is st's.
	return st, nil
}

// exchangeManifest publishes encoded through the spare file, swapping it
// with the current manifest (whose file info is cur), and returns the file
// info of the published file. It returns (nil, nil) when the caller should
// fall back to rename(2).
func (d *Dir) exchangeManifest(encoded []byte, cur fs.FileInfo) (fs.FileInfo, error) {
	target := filepath.Join(d.Path, ManifestFile)
	spare := filepath.Join(d.Path, TmpDir, SpareFile)
	f, err := openSingleLinked(spare)
	if err != nil {
		return nil, fmt.Errorf("spool publish %s: %w", d.Path, err)
	}
	// Later than the current manifest, and than now: the stamp of every
	// version differs from the previous ones.
	mtime := nextMTime(cur)
	err = rewrite(f, encoded)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		ts := unix.NsecToTimespec(mtime.UnixNano())
		err = unix.UtimesNanoAt(unix.AT_FDCWD, spare, []unix.Timespec{ts, ts}, 0)
	}
	var st fs.FileInfo
	if err == nil {
		st, err = os.Stat(spare)
	}
	if err != nil {
		os.Remove(spare)
		return nil, fmt.Errorf("spool publish %s: %w", d.Path, err)
	}
	if !st.ModTime().Equal(mtime) {
		// The file system keeps coarser times: stamps could repeat.
		d.noExchange.Store(true)
		return nil, nil
	}
	failpoint.Hit("publish-before-rename")
	// The exchange moves the inode: its size and mtime, which make the
	// stamp, are those just read.
	err = unix.Renameat2(unix.AT_FDCWD, spare, unix.AT_FDCWD, target, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		return st, nil
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP):
		d.noExchange.Store(true)
		return nil, nil
	case errors.Is(err, unix.ENOENT):
		return nil, nil // the manifest or the spare was removed meanwhile
	default:
		return nil, fmt.Errorf("spool publish %s: exchange: %w", d.Path, err)
	}
}

// writeInPlace replaces the content of name with data, reusing its inode.
// Readers may see a mix of old and new bytes, so it is only for
// self-verifying files whose readers retry (ReadManifestFile).
func (d *Dir) writeInPlace(name string, data []byte) error {
	p := filepath.Join(d.Path, name)
	f, err := openSingleLinked(p)
	if err != nil {
		return fmt.Errorf("spool write %s: %w", p, err)
	}
	err = rewrite(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool write %s: %w", p, err)
	}
	return nil
}

// openSingleLinked opens path for writing in place, creating it, and
// replacing it first when it has other links (rewriting it would change
// them too).
func openSingleLinked(path string) (*os.File, error) {
	for range 2 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, err
		}
		if st.Nlink <= 1 {
			return f, nil
		}
		f.Close()
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s keeps being linked elsewhere", path)
}

// rewrite makes data the whole content of f.
func rewrite(f *os.File, data []byte) error {
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(data)))
}

var (
	uploadTargetsMu sync.Mutex
	uploadTargets   = map[string][]string{} // spool root → target IDs
)

// SetUploadTargets declares the targets (opaque IDs, as in
// MarkUploadedTo) that this process uploads the spools under root to. From
// then on, Uploaded returns only a record valid for every one of them: a
// record for other targets (the configuration changed, or another process
// sharing the spool uploads elsewhere) is not evidence that these targets
// hold its chunks, so the uploader checks them and a rescan restages them.
func SetUploadTargets(root string, ids []string) {
	uploadTargetsMu.Lock()
	defer uploadTargetsMu.Unlock()
	uploadTargets[filepath.Clean(root)] = slices.Clone(ids)
}

// RecordCovers reports whether the upload record of d is valid for every
// target in ids.
func (d *Dir) RecordCovers(ids []string) bool {
	have, err := d.UploadedTargets()
	if err != nil || have == nil {
		return false
	}
	for _, id := range ids {
		if !slices.Contains(have, id) {
			return false
		}
	}
	return true
}

// uploadedForTargets reads the upload record, unless this process declared
// targets (SetUploadTargets) that it is not valid for.
func (d *Dir) uploadedForTargets() (*manifest.Manifest, []byte, error) {
	m, enc, err := d.ReadManifestFile(UploadedFile)
	if m == nil || err != nil {
		return m, enc, err
	}
	uploadTargetsMu.Lock()
	ids, ok := uploadTargets[filepath.Dir(filepath.Dir(filepath.Clean(d.Path)))]
	uploadTargetsMu.Unlock()
	if ok && !d.RecordCovers(ids) {
		return nil, nil, nil
	}
	return m, enc, nil
}

// UploadedTargets returns the target IDs the upload record is valid for;
// nil (and no error) when the spool does not say.
func (d *Dir) UploadedTargets() ([]string, error) {
	data, err := os.ReadFile(filepath.Join(d.Path, UploadedTargetsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read spool %s/%s: %w", d.Path, UploadedTargetsFile, err)
	}
	return append([]string{}, strings.Fields(string(data))...), nil
}

// MarkUploadedTo records encoded, the staged manifest's content, as the
// last upload to the targets ids. When the targets differ from the
// recorded ones, their file is removed before the record is rewritten and
// written after, so that a crash in between leaves a record valid for no
// target rather than one valid for the wrong targets.
func (d *Dir) MarkUploadedTo(encoded []byte, ids []string) error {
	want := strings.Join(ids, "\n") + "\n"
	p := filepath.Join(d.Path, UploadedTargetsFile)
	cur, err := os.ReadFile(p)
	same := err == nil && string(cur) == want
	if !same {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool record upload %s: %w", d.Path, err)
		}
	}
	if err := d.WriteUploaded(encoded); err != nil {
		return err
	}
	if same {
		return nil
	}
	return d.writeAtomic(UploadedTargetsFile, []byte(want))
}
