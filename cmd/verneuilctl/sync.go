package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/copier"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

func init() {
	register(&command{
		name:    "sync",
		usage:   "[--take-over] DB...",
		summary: "capture databases now through the replicating VFS (rescanning if needed; a database in WAL mode is read under a WAL read lock) and upload them",
		examples: []string{
			"verneuilctl sync /srv/app.db /srv/jobs.db",
			"verneuilctl sync --take-over /srv/app.db  # after moving the database to this host",
		},
		json: `[{"db": "/srv/app.db", "name": "web-1:/srv/app.db", "key": "1a2b-web-1%3A%2Fsrv%2Fapp.db",
  "version": "1764057600123456789", "commit_time": "2026-11-25T08:00:00.123456789Z", "length": 1048576}, ...]`,
		run: runSync,
	})
}

func runSync(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	takeOver := fs.Bool("take-over", false, "make each database the replica's latest even where the store's latest is another state numbered above it (check first that this host is the database's only writer)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("name at least one database")
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	for _, p := range pos {
		if err := fileExists(p); err != nil {
			return err
		}
	}
	keys := make([]string, len(pos))
	for i, p := range pos {
		ref, err := a.dbKey(p, "")
		if err != nil {
			return err
		}
		keys[i] = ref.Key
	}
	start := time.Now()
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		return err
	}
	uploaded := func() int64 { return r.Stats().BytesUploaded }
	p := a.startProgress("sync", uploaded, uploadTotal(cfg.SpoolDir, keys, uploaded))
	err = syncAll(ctx, r, pos, *takeOver)
	p.finish(err)
	if cerr := r.Close(ctx); err == nil && !(*takeOver && errors.Is(cerr, copier.ErrSuperseded)) {
		err = cerr
	}
	if err == nil && *takeOver {
		err = takeOverAll(ctx, cfg, pos, a.log)
	}
	if err != nil {
		return err
	}
	results := make([]syncResult, 0, len(pos))
	for _, p := range pos {
		res, err := syncedVersion(a, cfg, p)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	if a.jsonOut {
		return a.printJSON(results)
	}
	for _, r := range results {
		fmt.Fprintf(a.stdout, "synced %s as %s version %d (%s) in %s\n", r.DB, r.Name, r.Version, humanBytes(r.Length), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// syncResult is what sync reports of one database.
type syncResult struct {
	DB string `json:"db"`
	dbRef
	Version    uint64    `json:"version,string"`
	CommitTime time.Time `json:"commit_time"`
	Length     int64     `json:"length"`
}

// syncedVersion returns the version of the database at path that its
// spool records as uploaded.
func syncedVersion(a *app, cfg *config.Config, path string) (syncResult, error) {
	ref, err := a.dbKey(path, "")
	if err != nil {
		return syncResult{}, err
	}
	res := syncResult{DB: path, dbRef: ref}
	d, err := spool.Existing(cfg.SpoolDir, ref.Key)
	if err != nil {
		return res, err
	}
	m, _, err := d.Uploaded()
	if err != nil || m == nil {
		return res, fmt.Errorf("%s synced, but its spool records no upload: %v", path, err)
	}
	res.Version, res.CommitTime, res.Length = m.Seq, m.CommitTime.UTC(), m.Length
	return res, nil
}

// syncAll opens each database through the VFS and runs a read transaction:
// its end makes the tracker check the file against the spool and rescan it
// if anything changed outside the VFS. Then everything is uploaded.
// Rescan
// markers (spool.RescanMarker) found before a successful sync are removed.
// With superseded set, an upload that the store's latest superseded
// (copier.ErrSuperseded) still counts as a sync: takeOverAll follows.
func syncAll(ctx context.Context, r *replicator.Replicator, paths []string, superseded bool) error {
	markers, err := rescanMarkers(r.Config(), paths)
	if err != nil {
		return err
	}
	err = retrySync(ctx, func() error { return syncOnce(ctx, r, paths) })
	if err != nil && !(superseded && errors.Is(err, copier.ErrSuperseded)) {
		return err
	}
	return removeMarkers(markers)
}

// takeOverAll uploads the staged version of each database as the
// replica's latest, renumbered after the store's latest when that is
// another state numbered at or above it (copier.Options.TakeOver).
func takeOverAll(ctx context.Context, cfg *config.Config, paths []string, log *slog.Logger) error {
	stores, closeAll, err := openTargets(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	opts := oneShotCopierOptions(cfg, stores, log)
	opts.TakeOver = true
	c := copier.New(opts)
	var errs []error
	for _, p := range paths {
		_, key, err := replicator.ReplicaName(cfg, p, "")
		if err == nil {
			err = c.Upload(ctx, key)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("take over %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// syncAttempts bounds the attempts of a sync (and of verify's reads of a
// WAL database); a deferred attempt is followed by a pause that doubles
// from syncRetryPause up to syncRetryMaxPause, so that a sync racing live
// writers and checkpoints keeps trying for about 15 s in all.
const (
	syncAttempts       = 20
	syncChunkLostLimit = 5
	syncRetryMaxPause  = time.Second
)

// syncRetryPause is the first pause after a deferred attempt (a variable
// for tests).
var syncRetryPause = 100 * time.Millisecond

// deferredPause is the pause after the attempt-th deferred attempt (from 0).
func deferredPause(attempt int) time.Duration {
	d := syncRetryPause
	for range attempt {
		if d >= syncRetryMaxPause {
			break
		}
		d *= 2
	}
	return min(d, syncRetryMaxPause)
}

// retrySync runs once until it succeeds or fails for good, at most
// syncAttempts times. Two failures are retried: staged data found damaged
// (copier.ErrChunkLost: the copier asks for a rescan, which the next read
// through the VFS performs; at most syncChunkLostLimit times), and a
// capture deferred (tracker.ErrDeferred: another process's build held the
// spool, a writer committed during the sliced copy of a large file, or a
// WAL was restarted or moved on while it was read), after a pause.
func retrySync(ctx context.Context, once func() error) error {
	var err error
	lost, deferred := 0, 0
	for range syncAttempts {
		err = once()
		switch {
		case errors.Is(err, copier.ErrChunkLost):
			if lost++; lost >= syncChunkLostLimit {
				return err
			}
		case errors.Is(err, tracker.ErrDeferred):
			if err := sleepCtx(ctx, deferredPause(deferred)); err != nil {
				return errors.Join(err, ctx.Err())
			}
			deferred++
		default:
			return err
		}
	}
	return err
}

func syncOnce(ctx context.Context, r *replicator.Replicator, paths []string) error {
	if err := captureThroughVFS(ctx, r, paths); err != nil {
		return err
	}
	return r.Flush(ctx)
}

// captureThroughVFS makes the tracker check each database (and rescan it
// if it changed outside capture) with a read transaction through the VFS;
// a database in WAL mode is read under a WAL read lock and captured by r
// (walsync.go). No connection stays open.
func captureThroughVFS(ctx context.Context, r *replicator.Replicator, paths []string) error {
	for _, p := range paths {
		if err := syncWAL(ctx, r, p); !errors.Is(err, errNotWAL) {
			if err != nil {
				return err
			}
			continue
		}
		db, err := sql.Open("sqlite3", "file:"+url.PathEscape(p)+"?vfs="+replicator.VFSName+"&mode=rw")
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		var n int
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
	}
	return nil
}

// rescanMarkers returns the rescan markers present in the spools of paths.
func rescanMarkers(cfg *config.Config, paths []string) ([]string, error) {
	var markers []string
	for _, p := range paths {
		_, key, err := replicator.ReplicaName(cfg, p, "")
		if err != nil {
			return nil, err
		}
		m := filepath.Join(spool.DBsDir(cfg.SpoolDir), key, spool.RescanMarker)
		if _, err := os.Lstat(m); err == nil {
			markers = append(markers, m)
		}
	}
	return markers, nil
}

// removeMarkers removes rescan markers once their database is synced.
func removeMarkers(markers []string) error {
	for _, m := range markers {
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove rescan marker: %w", err)
		}
	}
	return nil
}
