package tracker

import (
	"errors"
	"io/fs"
	"os"
)

// reclaimedIsUploaded returns nil for err, the error of the upload a flush
// asked for, when it failed because the spool is gone: a copier reclaimed
// it (spool.Reclaim: the database file was deleted, and only once the
// staged version was uploaded), and the build that preceded the upload
// published nothing since (a publish recreates the spool). What the flush
// covers is then in every target. Other errors are returned unchanged.
func (db *DB) reclaimedIsUploaded(err error) error {
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, serr := os.Stat(db.spool.Path); !errors.Is(serr, fs.ErrNotExist) {
		return err
	}
	db.log.Debug("flush: the spool was reclaimed after its last upload", "spool", db.spool.Path)
	return nil
}
