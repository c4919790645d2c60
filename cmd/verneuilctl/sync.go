package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net/url"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/copier"
)

func init() {
	register(&command{
		name:    "sync",
		usage:   "DB...",
		summary: "capture databases now through the replicating VFS (rescanning if needed) and upload them",
		run:     runSync,
	})
}

func runSync(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
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
	r, err := verneuil.Start(ctx, cfg)
	if err != nil {
		return err
	}
	err = syncAll(ctx, r, pos)
	if cerr := r.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	for _, p := range pos {
		_, key, _ := verneuil.ReplicaName(cfg, p, "")
		fmt.Fprintln(a.stdout, key)
	}
	return nil
}

// syncAll opens each database through the VFS and runs a read transaction:
// its end makes the tracker check the file against the spool and rescan it
// if anything changed outside the VFS. Then everything is uploaded.
func syncAll(ctx context.Context, r *verneuil.Replicator, paths []string) error {
	var err error
	for range 3 {
		// Staged data found damaged makes the copier ask for a rescan,
		// which the next read through the VFS performs: try again.
		if err = syncOnce(ctx, r, paths); !errors.Is(err, copier.ErrChunkLost) {
			return err
		}
	}
	return err
}

func syncOnce(ctx context.Context, r *verneuil.Replicator, paths []string) error {
	for _, p := range paths {
		db, err := sql.Open("sqlite3", "file:"+url.PathEscape(p)+"?vfs="+verneuil.VFSName+"&mode=rw")
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
	return r.Flush(ctx)
}
