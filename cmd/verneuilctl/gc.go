package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/retention"
)

func init() {
	register(&command{
		name:    "gc",
		usage:   "[--dry-run] [--keep-last N] [--grace DURATION] [--json]",
		summary: "delete the versions the retention policy drops, then unreferenced chunks past the grace period",
		examples: []string{
			"verneuilctl gc --dry-run",
			"verneuilctl gc",
			"verneuilctl gc --keep-last 10 --grace 48h --json",
		},
		json: `gc: [{"target": "s3://bucket/prefix", "dry_run": false, "start": "2026-11-25T08:00:00Z", "duration_ns": 1200000000,
  "databases": 3, "manifests_kept": 40, "manifest_bytes_kept": 81920, "manifests_deleted": 12, "manifest_bytes_deleted": 24576,
  "manifests_unreadable": 0, "chunks_kept": 900, "chunk_bytes_kept": 58982400, "chunks_in_grace": 4, "chunks_deleted": 80,
  "chunk_bytes_deleted": 5242880, "chunks_deferred": 0, "missing_chunks": 0,
  "requests": {"list_pages": 2, "gets": 40, "puts": 1, "stats": 84, "deletes": 1}}, ...] (one object per target)`,
		run: runGC,
	})
}

func runGC(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "report what would be deleted; delete nothing")
	keepLast := fs.Int("keep-last", 0, "keep only the newest N versions of every database (instead of the configured retention)")
	grace := fs.String("grace", "", "grace period of unreferenced chunks (default: the configuration's gc_grace; 0 only with no writer running)")
	tmpDir := fs.String("tmp-dir", "", "directory for the spill files (default the system's)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *keepLast < 0 {
		return usagef("--keep-last: %d is negative", *keepLast)
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	opts := gcOptions(cfg, a.log)
	opts.DryRun = *dryRun
	opts.TempDir = *tmpDir
	if *grace != "" {
		d, err := time.ParseDuration(*grace)
		if *grace == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 {
			return usagef("--grace: bad duration %q", *grace)
		}
		opts.Grace = d
	}
	if *keepLast > 0 {
		// Versions superseded less than the grace period ago stay for
		// readers still using them.
		opts.Policy = retention.Policy{KeepLast: *keepLast, KeepAll: opts.Grace}
		opts.PolicyFor = nil
	}
	// The collection lists as it goes: the progress line shows the bytes
	// examined (kept or deleted) and their rate, with no total or ETA.
	var sofar atomic.Pointer[gc.Summary]
	opts.Progress = func(s gc.Summary) { sofar.Store(&s) }
	examined := func() int64 {
		s := sofar.Load()
		if s == nil {
			return 0
		}
		return s.ChunkBytesKept + s.ChunkBytesDeleted + s.ManifestBytesKept + s.ManifestBytesDeleted
	}
	counts := func() string {
		s := sofar.Load()
		if s == nil {
			return "listing"
		}
		return fmt.Sprintf("%d databases, %d manifests deleted, %d chunks kept, %d deleted", s.Databases, s.ManifestsDeleted, s.ChunksKept, s.ChunksDeleted)
	}
	stores, closeAll, err := openTargets(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	var sums []*gc.Summary
	for _, s := range stores {
		ls, ok := s.(blob.Lifecycle)
		if !ok {
			return fmt.Errorf("target %s cannot list with timestamps: gc is not supported on it", s)
		}
		sofar.Store(nil)
		p := a.startProgress("gc "+s.String(), examined, func() int64 { return 0 }, counts)
		sum, err := gc.Run(ctx, ls, opts)
		p.finish(err)
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		sums = append(sums, sum)
	}
	if a.jsonOut {
		type out struct {
			Target string `json:"target"`
			*gc.Summary
		}
		var o []out
		for i, s := range sums {
			o = append(o, out{stores[i].String(), s})
		}
		return a.printJSON(o)
	}
	verb := "deleted"
	if *dryRun {
		verb = "would delete"
	}
	for i, s := range sums {
		fmt.Fprintf(a.stdout, "%s: %d databases; manifests: %d kept (%d bytes), %s %d (%d bytes); chunks: %d kept (%d bytes, %d in grace), %s %d (%d bytes), %d deferred; %d requests in %s\n",
			stores[i], s.Databases, s.ManifestsKept, s.ManifestBytesKept, verb, s.ManifestsDeleted, s.ManifestBytesDeleted,
			s.ChunksKept, s.ChunkBytesKept, s.ChunksInGrace, verb, s.ChunksDeleted, s.ChunkBytesDeleted, s.ChunksDeferred,
			s.Requests.ListPages+s.Requests.Gets+s.Requests.Puts+s.Requests.Stats+s.Requests.Deletes, s.Duration.Round(time.Millisecond))
		if s.MissingChunks > 0 {
			fmt.Fprintf(a.stdout, "%s: WARNING: retained manifests reference %d chunks missing from the store (e.g. %v)\n", stores[i], s.MissingChunks, s.MissingSample)
		}
	}
	return nil
}

// gcOptions are the collection options the configuration gives.
func gcOptions(cfg *config.Config, log *slog.Logger) gc.Options {
	return gc.Options{
		Policy:    policyOf(cfg.Retention.For("")),
		PolicyFor: func(key string) retention.Policy { return policyFor(cfg, key) },
		Grace:     cfg.GCGrace.Duration(),
		Logger:    log,
	}
}

// periodicGC collects every target each gc_interval (±10%) until ctx is
// done (verneuilctl copier). Failures are logged; the next run retries.
func periodicGC(ctx context.Context, cfg *config.Config, stores []blob.Store, log *slog.Logger) {
	every := cfg.GCInterval.Duration()
	if every <= 0 {
		return
	}
	opts := gcOptions(cfg, log)
	for {
		timer := time.NewTimer(every*9/10 + rand.N(every/5+1))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		for _, s := range stores {
			ls, ok := s.(blob.Lifecycle)
			if !ok {
				continue
			}
			sum, err := gc.Run(ctx, ls, opts)
			if err != nil {
				log.Warn("periodic gc failed", "target", s.String(), "err", err)
				continue
			}
			log.Info("periodic gc", "target", s.String(), "manifests_deleted", sum.ManifestsDeleted,
				"chunks_deleted", sum.ChunksDeleted, "chunk_bytes_deleted", sum.ChunkBytesDeleted,
				"missing_chunks", sum.MissingChunks, "duration", sum.Duration)
		}
	}
}

// policyOf is a retention policy of the configured windows.
func policyOf(keepAll, hourly, daily time.Duration) retention.Policy {
	return retention.Policy{KeepAll: keepAll, Hourly: hourly, Daily: daily}
}

// policyFor is the configured policy of the database key, with the
// overrides of its replica name (a shortened key names none).
func policyFor(cfg *config.Config, key string) retention.Policy {
	name, err := names.NameFromKey(key)
	if err != nil {
		name = ""
	}
	return policyOf(cfg.Retention.For(name))
}

// retained says, for each stored version of the database key, why the
// configured retention policy keeps it ("" when the next gc deletes it),
// judged on the store's upload times as gc judges them.
func (a *app) retained(ctx context.Context, s blob.Store, key string) (map[uint64]string, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	ls, ok := s.(blob.Lifecycle)
	if !ok {
		return map[uint64]string{}, nil
	}
	var vs []retention.Version
	err = ls.Walk(ctx, names.ManifestsPrefix(key), func(page []blob.ObjectInfo) error {
		for _, o := range page {
			if seq, err := names.ParseManifestKey(o.Key); err == nil {
				vs = append(vs, retention.Version{Seq: seq, Uploaded: o.ModTime})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list versions of %s: %w", key, err)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Seq < vs[j].Seq })
	var latest uint64
	m, d, err := restore.LatestDelta(ctx, s, key)
	if err == nil {
		latest = m.Seq
	}
	why := retention.Select(policyFor(cfg, key), vs, latest, time.Now())
	out := make(map[uint64]string, len(vs))
	for i, v := range vs {
		out[v.Seq] = why[i]
	}
	if d != nil && out[d.BaseSeq] == "" {
		out[d.BaseSeq] = "base of latest"
	}
	return out, nil
}
