package spool

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// Pin reads the staged manifest under the spool lock and records it as the
// one being uploaded (PinFile): until the returned unpin runs, publishing
// newer manifests keeps the staged chunks it references, so that an upload
// of it can end while commits continue instead of restarting on each newer
// manifest. It returns a nil manifest (and a no-op unpin) when none is
// staged. The caller must hold UploadLock, so that there is one pin.
//
// unpin removes the pin and then the staged chunks only it kept. A pin left
// by a crash only delays their removal until the next upload, which
// replaces it and removes it when it ends.
func (d *Dir) Pin() (m *manifest.Manifest, enc []byte, unpin func(), err error) {
	unlock, err := d.Lock()
	if err != nil {
		return nil, nil, nil, err
	}
	defer unlock()
	m, enc, err = d.Manifest()
	if err != nil || m == nil {
		return m, enc, func() {}, err
	}
	if err := d.writeAtomic(PinFile, enc); err != nil {
		return nil, nil, nil, fmt.Errorf("pin the manifest being uploaded: %w", err)
	}
	return m, enc, func() { d.unpin(m) }, nil
}

// unpin removes the pin of m and the staged chunks that only it kept: an
// upload that failed (or was superseded) would otherwise leave them until
// the next commit.
func (d *Dir) unpin(m *manifest.Manifest) {
	path := filepath.Join(d.Path, PinFile)
	unlock, err := d.Lock()
	if err != nil {
		_ = os.Remove(path)
		return
	}
	defer unlock()
	_ = os.Remove(path)
	if cur, _, err := d.Manifest(); err == nil && cur != nil && !SameState(cur, m) {
		_ = d.gc(cur) // best effort: the next publish collects again
	}
}

// pinned returns the manifest being uploaded, nil when there is none or it
// does not decode (the pin is advisory: an upload that finds a chunk gone
// starts again on the newest manifest).
func (d *Dir) pinned() *manifest.Manifest {
	data, err := os.ReadFile(filepath.Join(d.Path, PinFile))
	if err != nil {
		return nil // none (fs.ErrNotExist), or unreadable: advisory
	}
	m, err := manifest.Decode(data)
	if err != nil {
		return nil
	}
	return m
}

// ClearStalePin removes a pin that no upload holds (its uploader was killed)
// and the staged chunks only it kept. The caller must hold UploadLock. It
// reports whether there was one.
func (d *Dir) ClearStalePin() (bool, error) {
	path := filepath.Join(d.Path, PinFile)
	if _, err := os.Lstat(path); err != nil {
		return false, nil // none (or unreadable: the next upload replaces it)
	}
	unlock, err := d.Lock()
	if err != nil {
		return false, err
	}
	defer unlock()
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("remove stale upload pin: %w", err)
	}
	if cur, _, err := d.Manifest(); err == nil && cur != nil {
		if err := d.gc(cur); err != nil {
			return true, err
		}
	}
	return true, nil
}
