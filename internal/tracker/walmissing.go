package tracker

import (
	"errors"
	"fmt"
	"io/fs"
)

// ErrWALMissing says that no file exists at the -wal's path while SQLite
// commits to it: the -wal was deleted or renamed while connections kept
// it open (SQLite goes on writing to the file it opened; SQLite's TCL
// suite deletes test databases and their -wal under open handles, an
// operator may remove or move it), or the database was moved. The
// commits cannot be read until the connections open a -wal at that path
// again; the capture after that rescans. It is logged once (at WARN) per
// database until a capture succeeds, and Flush reports it.
var ErrWALMissing = errors.New("the -wal file does not exist at its path (deleted or renamed while the database was open)")

// walOpenError wraps the error of opening the -wal at path.
func walOpenError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open WAL %s: %w", path, ErrWALMissing)
	}
	return fmt.Errorf("open WAL: %w", err)
}

// repeatedLocked reports whether the last capture failed with target too
// (then the new failure is logged at DEBUG only). db.mu must be held.
func (db *DB) repeatedLocked(target error) bool {
	return db.lastErr != nil && errors.Is(db.lastErr, target)
}
