package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/restore"
)

func init() {
	register(&command{
		name:    "restore",
		usage:   "(SOURCE_DB_PATH [--hostname H] | --manifest M) [--at TIME | --version N] --out FILE [--force]",
		summary: "rebuild a database from its replica into FILE (- for stdout; --force to replace a file)",
		run:     runRestore,
	})
}

func runRestore(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	hostname := fs.String("hostname", "", "host the database was replicated from (default: this host)")
	manifestArg := fs.String("manifest", "", "a manifest file, or a replica key (see manifest-name)")
	at := fs.String("at", "", "restore the version current at this time (RFC 3339, unix seconds or -DURATION)")
	version := fs.Uint64("version", 0, "restore this version (see list --versions)")
	out := fs.String("out", "", "destination file (a symlink is followed); - for stdout")
	force := fs.Bool("force", false, "replace an existing FILE (atomically, under SQLite's locks), moving a hot journal, -wal and -shm beside it aside")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	if (len(pos) == 1) == (*manifestArg != "") || len(pos) > 1 {
		return usagef("give exactly one of SOURCE_DB_PATH or --manifest")
	}
	if *at != "" && *version != 0 {
		return usagef("give at most one of --at and --version")
	}
	s, err := a.store(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	m, err := pickManifest(ctx, a, s, pos, *hostname, *manifestArg, *at, *version)
	if err != nil {
		return err
	}
	opts := restore.Options{Replace: *force, MoveAside: *force, MovedAside: func(from, to string) {
		// Whatever the log level: the operator needs the name to go back.
		fmt.Fprintf(a.stderr, "verneuilctl restore: moved %s aside to %s\n", from, to)
	}}
	if err := restore.ToFileWith(ctx, s, m, *out, opts); err != nil {
		switch {
		case errors.Is(err, restore.ErrHotJournal):
			return fmt.Errorf("%w; pass --force to move it aside and replace the database", err)
		case errors.Is(err, restore.ErrExists) && len(pos) == 1 && sameFile(pos[0], *out):
			return fmt.Errorf("--out %s is the source database; replacing it needs --force (stop the application first)", *out)
		case errors.Is(err, restore.ErrExists):
			return fmt.Errorf("%w; pass --force to replace it", err)
		}
		return err
	}
	if *out != "-" {
		a.log.Info("restored", "db", m.Name, "version", m.Seq, "bytes", m.Length, "out", *out)
		if a.jsonOut {
			return a.printJSON(infoOf(m))
		}
	}
	return nil
}

// sameFile says a and b name one existing file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// pickManifest finds the manifest that restore, manifest and shell use.
func pickManifest(ctx context.Context, a *app, s blob.Store, pos []string, hostname, manifestArg, at string, version uint64) (*manifest.Manifest, error) {
	var key string
	if manifestArg != "" {
		if data, err := os.ReadFile(manifestArg); err == nil {
			m, err := manifest.Decode(data)
			if err != nil {
				return nil, fmt.Errorf("manifest file %s: %w", manifestArg, err)
			}
			return m, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("manifest file %s: %w", manifestArg, err)
		}
		key = manifestArg
	} else {
		var err error
		if _, key, err = a.dbKey(pos[0], hostname); err != nil {
			return nil, err
		}
	}
	switch {
	case version != 0:
		return restore.Version(ctx, s, key, version)
	case at != "":
		t, err := parseTime(at)
		if err != nil {
			return nil, usagef("%v", err)
		}
		return restore.At(ctx, s, key, t)
	}
	m, err := restore.Latest(ctx, s, key)
	if errors.Is(err, blob.ErrNotFound) && manifestArg == "" {
		return nil, fmt.Errorf("%w (was it replicated from this host? try --hostname, or verneuilctl list)", err)
	}
	return m, err
}
