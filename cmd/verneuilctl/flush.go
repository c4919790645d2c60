package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/copier"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/spool"
)

func init() {
	register(&command{
		name:     "flush",
		usage:    "",
		summary:  "upload everything waiting in the spool directory, then exit",
		examples: []string{"verneuilctl flush", "verneuilctl flush --json"},
		json:     `{"databases": 3, "manifests": 2, "chunks": 40, "chunk_bytes": 2621440, "seconds": 0.8}`,
		run:      runFlush,
	})
}

func runFlush(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("flush", flag.ContinueOnError)
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("flush takes no arguments")
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	stores, closeAll, err := openTargets(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	start := time.Now()
	c := copier.New(oneShotCopierOptions(cfg, stores, a.log))
	uploaded := func() int64 { return c.Stats().BytesUploaded }
	p := a.startProgress("flush", uploaded, uploadTotal(cfg.SpoolDir, nil, uploaded))
	err = c.UploadAll(ctx)
	p.finish(err)
	if err := errors.Join(err, checkSpooled(cfg.SpoolDir, a.log)); err != nil {
		return err
	}
	st := c.Stats()
	res := flushResult{Databases: st.Databases, Manifests: st.Manifests, Chunks: st.ChunksUploaded,
		ChunkBytes: st.BytesUploaded, Seconds: time.Since(start).Seconds()}
	if a.jsonOut {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "flushed %d databases: %d manifests, %d chunks (%s) in %s\n", res.Databases, res.Manifests,
		res.Chunks, humanBytes(res.ChunkBytes), time.Since(start).Round(time.Millisecond))
	return nil
}

// flushResult is what flush reports.
type flushResult struct {
	Databases  int     `json:"databases"`
	Manifests  int64   `json:"manifests"`
	Chunks     int64   `json:"chunks"`
	ChunkBytes int64   `json:"chunk_bytes"`
	Seconds    float64 `json:"seconds"`
}

// checkSpooled checks every spooled database file: one in WAL mode is an
// error (its writes are not replicated); one changed outside capture is
// logged (verneuilctl sync or the copier daemon replicates it).
func checkSpooled(root string, log *slog.Logger) error {
	keys, err := spool.List(root)
	if err != nil {
		return err
	}
	now := time.Now()
	var errs []error
	for _, key := range keys {
		d, err := spool.Existing(root, key)
		if err != nil {
			continue
		}
		info, err := d.Info()
		if err != nil || info.Path == "" {
			continue
		}
		st, err := checkSource(d, info.Path, now)
		switch {
		case err != nil:
			log.Warn("check database", "db", info.Path, "err", err)
		case st.Outside:
			log.Warn("database changed outside capture: its replica lags behind the file; run verneuilctl sync (or the copier daemon)",
				"db", info.Path, "reason", st.Reason)
		}
	}
	return errors.Join(errs...)
}

// oneShotCopierOptions are the options of the copiers that `flush` and
// `sync --take-over` run once over the spool: the configuration's upload
// settings, at S3's request rate rather than the library's default.
func oneShotCopierOptions(cfg *config.Config, stores []blob.Store, log *slog.Logger) copier.Options {
	packBytes, repack := replicator.Packing(cfg)
	return copier.Options{SpoolDir: cfg.SpoolDir, Targets: stores, RateLimit: 1000, RateBurst: 1000,
		GCGrace: cfg.GCGrace.Duration(), FullEvery: cfg.MaxDeltaChain, HistoryInterval: cfg.HistoryEvery(),
		Logger: log.With("component", "copier"), PackBytes: packBytes, RepackThreshold: repack}
}
