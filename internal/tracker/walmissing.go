package tracker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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

// logRepeated logs a capture failure err of the kind target at level
// with first when the previous capture did not fail so, and at DEBUG with
// again when it did: a failure every commit repeats is logged when it
// starts (flushes and status keep reporting it).
func (db *DB) logRepeated(target, err error, level slog.Level, first, again string) {
	db.mu.Lock()
	repeated := db.lastErr != nil && errors.Is(db.lastErr, target)
	db.mu.Unlock()
	if repeated {
		db.log.Debug(again, "err", err)
		return
	}
	db.log.Log(context.Background(), level, first, "err", err)
}
