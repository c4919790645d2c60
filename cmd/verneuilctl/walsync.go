package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// WAL databases in sync, verify and the copier daemon.
//
// The committed state of a database in WAL mode is the database file
// overlaid with the WAL's committed frames. verneuilctl reads it as the
// capture composes it, under a WAL read lock taken by SQLite itself: a
// read transaction of a read-only connection through SQLite's unix VFS
// (tracker.ReadWALSnapshot says what that lock guarantees). The
// connection never writes: it cannot checkpoint, restart or delete the
// WAL, so the application's checkpoints are unchanged. Every descriptor
// of the database file, the -wal and the -shm this process opens is
// closed after the connection: closing one drops the process's POSIX
// locks on the file, the connection's included.

// errNotWAL says that the database was not in WAL mode under the read
// lock: the rollback-journal path applies.
var errNotWAL = errors.New("not in WAL mode")

// withWALSnapshot runs f on the committed state of the database at path
// in WAL mode, under a WAL read lock held until f returns; errNotWAL when
// the database is not in WAL mode.
func withWALSnapshot(ctx context.Context, path string, f func(*tracker.WALSnapshot) error) (err error) {
	var files []*os.File
	defer func() {
		for _, fl := range files {
			fl.Close()
		}
	}()
	open := func(name string) (*os.File, error) {
		fl, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", path, err)
		}
		files = append(files, fl)
		return fl, nil
	}
	dbf, err := open(path)
	if err != nil {
		return err
	}
	// A file whose header does not say WAL takes the rollback-journal
	// path without a SQLite connection: a read-only one fails on a hot
	// journal it may not roll back (SQLITE_READONLY), which that path
	// handles. The header is checked again under the read lock.
	if header, err := readHeaderFrom(dbf, path); err != nil {
		return err
	} else if !tracker.IsWAL(header) {
		return errNotWAL
	}
	// Deferred after the files' closing: it runs first.
	db, err := sql.Open("sqlite3", "file:"+url.PathEscape(path)+"?vfs=unix&mode=ro")
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("read lock on %s: %w", path, err)
	}
	defer tx.Rollback()
	var mode string
	if err := tx.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read lock on %s: %w", path, err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return fmt.Errorf("read lock on %s: %w", path, err)
	}
	header, err := readHeaderFrom(dbf, path)
	if err != nil {
		return err
	}
	if !tracker.IsWAL(header) || mode != "wal" {
		return errNotWAL
	}
	// SQLite names the -wal and -shm after the file a symbolic link
	// leads to.
	canon, err := names.Canonical(path)
	if err != nil {
		return err
	}
	wal, err := open(canon + "-wal")
	if err != nil {
		return err
	}
	shm, err := open(canon + "-shm")
	if err != nil {
		return err
	}
	snap, err := tracker.ReadWALSnapshot(dbf, wal, shm)
	if err != nil {
		return fmt.Errorf("database %s: read the WAL state: %w", path, err)
	}
	return f(snap)
}

// readHeaderFrom reads the first tracker.HeaderLen bytes of an open
// database file (zeros past its end).
func readHeaderFrom(f *os.File, path string) ([]byte, error) {
	header := make([]byte, tracker.HeaderLen)
	if _, err := f.ReadAt(header, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("database %s: read header: %w", path, err)
	}
	return header, nil
}

// syncWAL captures the state of the database at path in WAL mode into
// its spool (nothing when the spool holds it or a later state);
// errNotWAL when it is not in WAL mode.
func syncWAL(ctx context.Context, r *replicator.Replicator, path string) error {
	return withWALSnapshot(ctx, path, func(snap *tracker.WALSnapshot) error {
		return r.CaptureWAL(path, snap)
	})
}

// checkWALSource compares a database in WAL mode with its spool without
// taking any lock (status, flush and the daemon): the -shm's wal-index
// header gives the WAL position, which the staged manifest's version id
// records. A difference counts as changed outside capture once the -wal
// and the database file have been left alone for outsideGrace (a capture
// in flight publishes well before). Without a -shm (no connection since
// the last one closed, which copied every frame into the file and
// deleted the WAL), the file changed outside capture when it changed
// after the staged manifest.
func checkWALSource(st *sourceState, d *spool.Dir, path string, now time.Time) error {
	st.WAL = true
	if st.Marker {
		st.Outside = true
		st.Reason = "written by a process that does not capture (a child forked after the extension loaded)"
		return nil
	}
	m, _, err := d.Manifest()
	if err != nil {
		return err
	}
	if m == nil {
		if st.stamp.Size > 0 {
			st.Outside, st.Reason = true, "never captured"
		}
		return nil
	}
	settled := func(names ...string) (time.Duration, bool) {
		latest := time.Unix(0, st.stamp.CTime)
		for _, n := range names {
			fi, err := os.Stat(n)
			if err != nil {
				continue
			}
			if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
				if c := time.Unix(sys.Ctim.Sec, sys.Ctim.Nsec); c.After(latest) {
					latest = c
				}
			}
		}
		age := now.Sub(latest)
		return age, age >= outsideGrace
	}
	canon, err := names.Canonical(path)
	if err != nil {
		return err
	}
	shm, err := os.Open(canon + "-shm")
	if errors.Is(err, fs.ErrNotExist) {
		if st.stamp.CTime > st.stamp.ManifestStamp.MTime {
			if age, ok := settled(); ok {
				st.Outside = true
				st.Reason = fmt.Sprintf("in WAL mode, changed %s ago (with no connection open) and not captured since", age.Round(time.Second))
			}
		} else {
			st.InSync = true
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("database %s: %w", path, err)
	}
	salt, mx, err := tracker.WALHeaderPosition(shm)
	shm.Close()
	if err != nil {
		return fmt.Errorf("database %s: %w", path, err)
	}
	if ms, mmx, ok := tracker.WALPositionOf(m.VersionID); ok && ms == salt && mmx == mx {
		st.InSync = true
		return nil
	}
	if age, ok := settled(canon + "-wal"); ok {
		st.Outside = true
		st.Reason = fmt.Sprintf("in WAL mode, at a WAL position not captured (changed %s ago): committed or checkpointed without the replicating VFS", age.Round(time.Second))
	}
	return nil
}
