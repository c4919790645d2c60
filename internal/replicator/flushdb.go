package replicator

import (
	"context"
	"fmt"

	"github.com/verneuil-go/verneuil/internal/names"
)

// FlushDB uploads what was committed to the database at path and returns
// once it is in every target. The database need not be open in this
// process: the spool left by a closed connection (or by an earlier process
// with the same configuration) is uploaded as well.
func (r *Replicator) FlushDB(ctx context.Context, path string) error {
	if r.closed.Load() {
		return ErrClosed
	}
	canon, err := names.Canonical(path)
	if err != nil {
		return err
	}
	if db := r.tracker.DB(canon); db != nil {
		return db.Flush(ctx)
	}
	_, key, err := ReplicaName(r.cfg, canon, "")
	if err != nil {
		return err
	}
	if err := r.copier.Upload(ctx, key); err != nil {
		return fmt.Errorf("flush %s: %w", canon, err)
	}
	return nil
}
