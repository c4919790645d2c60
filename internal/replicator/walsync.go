package replicator

import (
	"errors"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// CaptureWAL stages snap, the state of the database at path in WAL mode
// read outside the VFS under a WAL read lock (tracker.ReadWALSnapshot),
// unless the spool holds it or a later state already: verneuilctl sync
// and verify, and the copier daemon. FlushDB uploads it.
func (r *Replicator) CaptureWAL(path string, snap *tracker.WALSnapshot) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if !r.cfg.ReplicateEnabled() {
		return errors.New("verneuil: replication is disabled in the configuration (replicate: false)")
	}
	return r.tracker.CaptureWAL(path, snap)
}
