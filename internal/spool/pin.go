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
// A pin left by a crash only delays the removal of the chunks it references
// until the next upload, which replaces it and removes it when it ends.
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
	return m, enc, func() { _ = os.Remove(filepath.Join(d.Path, PinFile)) }, nil
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
