package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// versionXattr is the version stamp the replicating VFS writes on a
// database file before the first write of each transaction
// (docs/FORMAT.md).
const versionXattr = "user.verneuil.version"

// outsideGrace is how long a file may differ from its last capture when
// the difference may be a capture still in flight (a transaction through
// the VFS stamps the file before the writer's process publishes the new
// manifest, about 100 ms later): only older differences count as changed
// outside capture. A difference that no capture can explain (the header
// changed but not the version stamp, or the file was replaced) counts at
// once.
const outsideGrace = 10 * time.Second

// statFile is os.Stat (tests simulate file systems with coarse times).
var statFile = os.Stat

// fileStamp is what stat(2) says of a database file; an unchanged stamp
// means an unchanged identity.
type fileStamp struct {
	Ino, Size     uint64
	MTime, CTime  int64
	ManifestStamp spool.Stamp
}

// sourceState compares a database file with the last state captured in
// its spool.
type sourceState struct {
	// WAL: the database is in WAL mode (walsync.go).
	WAL bool
	// Outside: the file changed outside capture (a bypassing writer, a
	// forked child, a replaced file, a failed capture): the spool and the
	// replica lag behind it until something syncs it. Reason says how it
	// was seen.
	Outside bool
	Reason  string
	// Marker: the spool holds spool.RescanMarker (left by a forked child).
	Marker bool
	// Missing: the database file does not exist (any more).
	Missing bool
	// InSync: the file's identity is the one of the staged manifest.
	InSync bool
	stamp  fileStamp
}

// walReason is the status text of a database in WAL mode.
func walReason(string) string {
	return "in WAL mode: commits through the VFS are captured at the release of the WAL write lock; " +
		"sync, verify and the copier daemon read it under a WAL read lock"
}

// checkSource reads the identity of the database file at path (inode,
// version xattr, 100-byte header) and compares it with the spool's staged
// manifest. It opens and closes the file: the caller must not hold SQLite
// connections to it in this process (closing a descriptor drops the
// process's POSIX locks).
func checkSource(d *spool.Dir, path string, now time.Time) (sourceState, error) {
	st, err := quickCheck(d, path)
	if err != nil || st.Missing {
		return st, err
	}
	header, err := readHeader(path)
	if err != nil {
		return st, err
	}
	if tracker.IsWAL(header) {
		return st, checkWALSource(&st, d, path, now)
	}
	if st.Marker {
		st.Outside = true
		st.Reason = "written by a process that does not capture (a child forked after the extension loaded)"
		return st, nil
	}
	m, _, err := d.Manifest()
	if err != nil {
		return st, err
	}
	if m == nil {
		if st.stamp.Size > 0 {
			st.Outside, st.Reason = true, "never captured"
		}
		return st, nil
	}
	curX := readXattr(path)
	if bytes.Equal(tracker.Identity(st.stamp.Ino, curX, header), m.VersionID) {
		st.InSync = true
		return st, nil
	}
	prevIno, prevX, ok := splitIdentity(m.VersionID)
	switch {
	case ok && prevIno != st.stamp.Ino:
		st.Outside, st.Reason = true, "the file was replaced since the last capture"
	case ok && len(prevX) > 0 && bytes.Equal(prevX, curX):
		st.Outside, st.Reason = true, "written without the replicating VFS (the header changed, the version stamp did not)"
	default:
		if other := capturedAs(d, path, tracker.Identity(st.stamp.Ino, curX, header)); other != "" {
			st.Outside = true
			st.Reason = fmt.Sprintf("written through another name of the file, %s (a hard link, replicated separately): open the database by one name", other)
		} else if age := now.Sub(time.Unix(0, st.stamp.CTime)); age >= outsideGrace {
			st.Outside = true
			st.Reason = fmt.Sprintf("changed %s ago and not captured since", age.Round(time.Second))
		}
	}
	return st, nil
}

// capturedAs returns another name of the file at path (a hard link) whose
// spool, next to d, has captured the file's current identity id, or "".
// Then no capture in flight for path can explain the difference: a
// process wrote through the other name. It reads the spools' db.json
// files, so it runs only when the identity differs.
func capturedAs(d *spool.Dir, path string, id []byte) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	root := filepath.Dir(filepath.Dir(d.Path)) // ROOT/dbs/KEY
	keys, err := spool.List(root)
	if err != nil {
		return ""
	}
	for _, key := range keys {
		if key == d.Key {
			continue
		}
		o, err := spool.Existing(root, key)
		if err != nil {
			continue
		}
		info, err := o.Info()
		if err != nil || info.Path == "" || info.Path == path {
			continue
		}
		if ofi, err := os.Stat(info.Path); err != nil || !os.SameFile(fi, ofi) {
			continue
		}
		if m, _, err := o.Manifest(); err == nil && m != nil && bytes.Equal(m.VersionID, id) {
			return info.Path
		}
	}
	return ""
}

// quickCheck fills the marker flag and the stamps of the file and of the
// staged manifest: three stat(2) calls.
func quickCheck(d *spool.Dir, path string) (sourceState, error) {
	var st sourceState
	if _, err := os.Stat(filepath.Join(d.Path, spool.RescanMarker)); err == nil {
		st.Marker = true
	}
	ms, err := d.ManifestStamp()
	if err != nil {
		return st, err
	}
	st.stamp.ManifestStamp = ms
	fi, err := statFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		st.Missing = true
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("database %s: %w", path, err)
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return st, fmt.Errorf("database %s: no inode number", path)
	}
	st.stamp.Ino, st.stamp.Size = sys.Ino, uint64(fi.Size())
	st.stamp.MTime = fi.ModTime().UnixNano()
	st.stamp.CTime = sys.Ctim.Sec*1e9 + sys.Ctim.Nsec
	return st, nil
}

// splitIdentity returns the inode and version xattr of an identity
// (tracker.Identity).
func splitIdentity(id []byte) (ino uint64, xattr []byte, ok bool) {
	if len(id) < 9 || len(id) < 9+int(id[8]) {
		return 0, nil, false
	}
	for _, b := range id[:8] {
		ino = ino<<8 | uint64(b)
	}
	return ino, id[9 : 9+int(id[8])], true
}

// readHeader returns the first tracker.HeaderLen bytes of the file (zeros
// past its end).
func readHeader(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	defer f.Close()
	return readHeaderFrom(f, path)
}

// readXattr returns the version xattr of the file, nil when absent or
// unsupported (the tracker's identity then falls back to the header).
func readXattr(path string) []byte {
	buf := make([]byte, 256)
	n, err := syscall.Getxattr(path, versionXattr, buf)
	if err != nil || n <= 0 {
		return nil
	}
	return buf[:n]
}
