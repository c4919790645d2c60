package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

func init() {
	register(&command{
		name:    "restore",
		usage:   "(DB [--hostname H] | --manifest M) [--at TIME | --version N] [--out FILE] [--force]",
		summary: "rebuild a database from its replica into FILE (default: the database's own path, if it does not exist; - for stdout)",
		examples: []string{
			"verneuilctl restore /srv/app.db --out /tmp/app.db",
			"verneuilctl restore web-3:/srv/app.db --at 2026-11-25T08:00:00Z --out /tmp/app.db",
			"verneuilctl restore /srv/app.db --if-db-not-exists --if-replica-exists  # at boot, before the application starts",
			"verneuilctl restore --manifest pinned.manifest --out /tmp/app.db",
			"verneuilctl restore /srv/app.db --out - | sqlite3 -readonly /dev/stdin .dump",
		},
		json: `{"restored": true, "name": "web-1:/srv/app.db", "key": "1a2b-web-1%3A%2Fsrv%2Fapp.db",
 "version": "1764057600123456789", "commit_time": "2026-11-25T08:00:00.123456789Z",
 "length": 1048576, "page_size": 4096, "chunk_size": 65536, "chunks": 16,
 "out": "/srv/app.db", "seconds": 0.12}
when nothing was restored (--if-db-not-exists, --if-replica-exists):
{"restored": false, "out": "/srv/app.db", "reason": "..."}`,
		run: runRestore,
	})
}

// restoreResult is the JSON output of restore.
type restoreResult struct {
	Restored bool `json:"restored"`
	*manifestInfo
	Out     string  `json:"out"`
	Seconds float64 `json:"seconds,omitempty"`
	Reason  string  `json:"reason,omitempty"`
}

// pickFlags are the flags that choose a version (restore, manifest).
type pickFlags struct {
	hostname, manifest, at, target *string
	version                        *uint64
}

func definePickFlags(fs *flag.FlagSet) pickFlags {
	return pickFlags{
		hostname: fs.String("hostname", "", "the `HOST` the database was replicated from, for a DB given as a path (default: this host)"),
		manifest: fs.String("manifest", "", "a manifest `FILE` (manifest --out pins a version) or a replica key, instead of DB"),
		at:       fs.String("at", "", "the version current at `TIME` (within a burst of writes, history has one version per history_interval, plus the last): RFC 3339 with a zone (as printed by list), unix seconds, or -DURATION before now"),
		version:  fs.Uint64("version", 0, "the version `N` (decimal, as list --versions prints it: one in history, or the latest)"),
		target:   targetFlag(fs),
	}
}

// check validates the combination of the flags and the positional
// arguments.
func (p pickFlags) check(pos []string) error {
	if (len(pos) == 1) == (*p.manifest != "") || len(pos) > 1 {
		return usagef("give exactly one of DB or --manifest")
	}
	if *p.at != "" && *p.version != 0 {
		return usagef("give at most one of --at and --version")
	}
	if *p.manifest != "" && *p.hostname != "" {
		return usagef("--hostname applies to DB, not to --manifest")
	}
	if *p.manifest != "" && (*p.at != "" || *p.version != 0) && isRegularFile(*p.manifest) {
		return usagef("--manifest %s is a file, which pins one version: --at and --version do not apply", *p.manifest)
	}
	return nil
}

func isRegularFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func runRestore(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	pick := definePickFlags(fs)
	out := fs.String("out", "", "destination `FILE` (a symlink is followed); - for stdout (default: the database's path, for a DB of this host)")
	force := fs.Bool("force", false, "replace an existing FILE (atomically, under SQLite's locks), moving a hot journal, -wal and -shm beside it aside; with --out -, write to a terminal")
	ifDBNotExists := fs.Bool("if-db-not-exists", false, "do nothing (exit 0) when FILE exists")
	ifReplicaExists := fs.Bool("if-replica-exists", false, "do nothing (exit 0) when the target has no replica of the database")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := pick.check(pos); err != nil {
		return err
	}
	if *out == "" {
		if len(pos) == 0 || *pick.hostname != "" {
			return usagef("--out is required with --manifest or --hostname")
		}
		ref, _, err := a.parseDB(pos[0], "")
		if err != nil {
			return err
		}
		p, ok := a.localPath(pos[0], ref)
		if !ok {
			return usagef("--out is required: %s is not a database of this host", ref.Name)
		}
		*out = p
	}
	if *force && *ifDBNotExists {
		return usagef("give at most one of --force and --if-db-not-exists")
	}
	if *out == "-" && !*force && isTerminal(os.Stdout) {
		return errors.New("--out - would write the database to a terminal; redirect stdout or pass --force")
	}
	if *out != "-" && *ifDBNotExists {
		if _, err := os.Lstat(*out); err == nil {
			return a.restoreSkipped(*out, fmt.Sprintf("%s exists", *out))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--if-db-not-exists: %w", err)
		}
	}
	s, err := a.store(ctx, *pick.target)
	if err != nil {
		return err
	}
	defer s.Close()
	m, ref, err := pickManifest(ctx, a, s, pos, pick)
	if err != nil {
		if *ifReplicaExists && errors.Is(err, blob.ErrNotFound) {
			return a.restoreSkipped(*out, oneLine(err))
		}
		return err
	}
	opts := restore.Options{Replace: *force, MoveAside: *force, MovedAside: func(from, to string) {
		// Whatever the log level: the operator needs the name to go back.
		fmt.Fprintf(a.stderr, "verneuilctl restore: moved %s aside to %s\n", from, to)
	}}
	start := time.Now()
	counted := &chunkCounter{Store: s}
	p := a.startProgress("restore "+m.Name, func() int64 { return counted.done(m.ChunkSize) },
		func() int64 { return m.Length })
	err = restore.ToFileWith(ctx, counted, m, *out, opts)
	p.finish(err)
	if err != nil {
		switch {
		case errors.Is(err, restore.ErrHotJournal):
			return fmt.Errorf("%w; pass --force to move it aside and replace the database", err)
		case errors.Is(err, restore.ErrExists) && len(pos) == 1 && sameFile(pos[0], *out):
			return fmt.Errorf("--out %s is the source database; replacing it needs --force (stop the application first), or --if-db-not-exists to keep it", *out)
		case errors.Is(err, restore.ErrExists):
			return fmt.Errorf("%w; pass --force to replace it", err)
		case errors.Is(err, restore.ErrInUse), errors.Is(err, restore.ErrNotRegular):
			return err
		}
		return storeError(err, ref)
	}
	elapsed := time.Since(start)
	a.log.Info("restored", "db", m.Name, "version", m.Seq, "bytes", m.Length, "out", *out)
	info := infoOf(m)
	if a.jsonOut && *out != "-" {
		return a.printJSON(restoreResult{Restored: true, manifestInfo: &info, Out: *out, Seconds: elapsed.Seconds()})
	}
	fmt.Fprintf(a.stderr, "restored %s version %d (%d bytes) to %s in %s\n", m.Name, m.Seq, m.Length, *out, elapsed.Round(time.Millisecond))
	return nil
}

// restoreSkipped reports a restore that --if-db-not-exists or
// --if-replica-exists turned into nothing.
func (a *app) restoreSkipped(out, reason string) error {
	if a.jsonOut {
		return a.printJSON(restoreResult{Out: out, Reason: reason})
	}
	fmt.Fprintf(a.stderr, "verneuilctl restore: nothing restored: %s\n", reason)
	return nil
}

// localPath returns the path on this host of the database arg names: the
// path itself, or the path of a HOST:/PATH name of this host.
func (a *app) localPath(arg string, ref dbRef) (string, bool) {
	if _, err := names.NameFromKey(arg); err == nil || isShortenedKey(arg) {
		arg = ref.Name
	}
	host, path, ok := strings.Cut(arg, ":")
	if !ok || host == "" || strings.Contains(host, "/") || !strings.HasPrefix(path, "/") {
		return arg, true
	}
	cfg, err := a.config()
	if err != nil || names.Hostname(cfg.Hostname) != host {
		return "", false
	}
	return path, true
}

// sameFile says a and b name one existing file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// pickManifest finds the manifest that restore and manifest use: of the
// manifest file or key given with --manifest, or of the database pos[0];
// the latest, or the one --version or --at selects.
func pickManifest(ctx context.Context, a *app, s blob.Store, pos []string, p pickFlags) (*manifest.Manifest, dbRef, error) {
	var ref dbRef
	if *p.manifest != "" {
		if _, err := os.Stat(*p.manifest); err == nil {
			m, err := restore.ManifestFile(ctx, s, *p.manifest)
			if err != nil {
				return nil, ref, err
			}
			return m, dbRef{m.Name, names.Key(m.Name)}, nil
		} else if !errors.Is(err, fs.ErrNotExist) || !isKeyOrName(*p.manifest) {
			return nil, ref, fmt.Errorf("manifest file %s: %w", *p.manifest, err)
		}
		pos = []string{*p.manifest}
	}
	ref, err := a.resolveDB(ctx, s, pos[0], *p.hostname)
	if err != nil {
		return nil, ref, err
	}
	var m *manifest.Manifest
	switch {
	case *p.version != 0:
		m, err = restore.Version(ctx, s, ref.Key, *p.version)
	case *p.at != "":
		t, terr := restore.ParseTime(*p.at)
		if terr != nil {
			return nil, ref, usagef("--at: %v", terr)
		}
		m, err = restore.At(ctx, s, ref.Key, t)
	default:
		m, err = restore.Latest(ctx, s, ref.Key)
	}
	return m, ref, storeError(err, ref)
}
