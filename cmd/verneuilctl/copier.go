package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/verneuil-go/verneuil/internal/copier"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

func init() {
	register(&command{
		name:    "copier",
		usage:   "[--metrics-addr HOST:PORT] [--scan-interval D] [--shutdown-timeout D] [--workers N] [--per-db-metrics=false]",
		summary: "run the copier daemon: drain every spool on this host into the targets until SIGINT/SIGTERM",
		examples: []string{
			"verneuilctl copier --metrics-addr 127.0.0.1:9464",
			"systemctl enable --now verneuil-copier  # contrib/verneuil-copier.service",
		},
		run: runCopier,
	})
}

func runCopier(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("copier", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics (and /healthz)")
	scanInterval := fs.Duration("scan-interval", 5*time.Second, "`DURATION` of the spool scan")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how `DURATION` in-flight uploads may take to finish")
	workers := fs.Int("workers", 0, "number `N` of concurrent uploads (default: copier_workers from the configuration)")
	perDB := fs.Bool("per-db-metrics", true, "export per-database series (one set per spooled database)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("copier takes no arguments")
	}
	if *scanInterval <= 0 {
		return usagef("--scan-interval must be positive")
	}
	if *shutdownTimeout <= 0 {
		return usagef("--shutdown-timeout must be positive")
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	if *workers == 0 {
		*workers = cfg.CopierWorkers
	}
	if *workers < 0 {
		return usagef("--workers must not be negative")
	}
	if *workers < 1 {
		return usagef("--workers must be at least 1")
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("create spool directory: %w", err)
	}
	stores, closeAll, err := openTargets(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	log := a.log.With("component", "copier")
	packBytes, repack := replicator.Packing(cfg)
	c := copier.New(copier.Options{
		SpoolDir:        cfg.SpoolDir,
		Targets:         stores,
		Workers:         *workers,
		FullEvery:       cfg.MaxDeltaChain,
		PackBytes:       packBytes,
		RepackThreshold: repack,
		KeepRecords:     true, // per-database metrics of every spool
		Interval:        cfg.UploadInterval.Duration(),
		ScanInterval:    *scanInterval,
		RateLimit:       cfg.RateLimit,
		RateBurst:       cfg.RateBurst,
		GCGrace:         cfg.GCGrace.Duration(),
		HistoryInterval: cfg.HistoryEvery(),
		Logger:          log,
	})

	h := newHealer(cfg, log, *scanInterval)
	var srv *http.Server
	srvDone := make(chan error, 1)
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		started := time.Now()
		mux.Handle("/metrics", metricsHandler(func(w metricWriter) {
			writeCopierMetrics(w, c, h, *perDB, started)
		}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "ok")
		})
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { srvDone <- srv.Serve(ln) }()
		fmt.Fprintf(a.stderr, "verneuilctl copier: serving metrics on http://%s/metrics\n", ln.Addr())
	}

	c.Start(context.WithoutCancel(ctx))
	targets := make([]string, len(stores))
	for i, s := range stores {
		targets[i] = s.String()
	}
	log.Info("copier daemon started", "spool_dir", cfg.SpoolDir, "targets", targets,
		"workers", *workers, "scan_interval", *scanInterval, "upload_interval", cfg.UploadInterval.Duration())

	// Databases changed outside capture are synced every scan interval.
	hctx, hstop := context.WithCancel(ctx)
	healed := make(chan struct{})
	go func() {
		defer close(healed)
		h.run(hctx)
	}()
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		periodicGC(hctx, cfg, stores, log)
	}()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-srvDone:
		serveErr = fmt.Errorf("metrics server: %w", serveErr)
	}
	hstop()
	<-healed
	<-collected
	log.Info("shutting down: finishing in-flight uploads", "timeout", *shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	closeErr := errors.Join(h.close(sctx), c.Close(sctx))
	if srv != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(hctx)
		hcancel()
	}
	st := c.Stats()
	log.Info("copier daemon stopped", "manifests", st.Manifests, "chunks", st.ChunksUploaded,
		"upload_errors", st.Errors, "pending_databases", st.PendingDatabases)
	return errors.Join(serveErr, closeErr)
}

// writeCopierMetrics writes the copier's stats as Prometheus metrics
// (docs/OPERATIONS.md lists them).
func writeCopierMetrics(w metricWriter, c *copier.Copier, h *healer, perDB bool, started time.Time) {
	s := c.Stats()
	sources := h.snapshot()
	w.Gauge("verneuil_copier_start_time_seconds", "Unix time the copier started.", float64(started.UnixNano())/1e9)
	w.Counter("verneuil_copier_requests_total", "Blob-store requests, retries included.", float64(s.Requests))
	w.Counter("verneuil_copier_request_retries_total", "Blob-store requests retried after a transient error.", float64(s.Retries))
	w.Counter("verneuil_copier_request_errors_total", "Blob-store requests that failed.", float64(s.RequestErrors))
	w.Counter("verneuil_copier_uploads_total", "Database upload attempts (a manifest and the chunks it needs).", float64(s.Uploads))
	w.Counter("verneuil_copier_upload_errors_total", "Database upload attempts that failed.", float64(s.Errors))
	w.Counter("verneuil_copier_manifests_total", "Manifests published.", float64(s.Manifests))
	w.Counter("verneuil_copier_manifest_bytes_total", "Bytes of manifests published (per target).", float64(s.ManifestBytes))
	w.Counter("verneuil_copier_chunks_total", "Chunk objects uploaded (to every target).", float64(s.ChunksUploaded))
	w.Counter("verneuil_copier_chunk_bytes_total", "Bytes of chunk objects uploaded (per target).", float64(s.BytesUploaded))
	w.Counter("verneuil_copier_scans_total", "Background scans of the spool directory.", float64(s.Scans))
	w.Counter("verneuil_copier_scan_errors_total", "Spool scans that could not list the spool directory.", float64(s.ScanErrors))
	w.Counter("verneuil_copier_spools_scanned_total", "Spools the scans examined (none while every database is idle).", float64(s.SpoolsScanned))
	w.Counter("verneuil_copier_dirty_spools_scanned_total", "Spools the scans examined because they were marked dirty.", float64(s.DirtyScanned))
	w.Counter("verneuil_copier_resequenced_total", "Manifests renumbered after the stored version because a clock was behind (clock skew).", float64(s.Resequenced))
	w.Counter("verneuil_copier_superseded_total", "Staged manifests not published as latest because the store held a newer state or another writer's.", float64(s.Superseded))
	w.Counter("verneuil_copier_repacks_total", "Uploads that moved the live records of mostly dead packs to new packs.", float64(s.Repacks))
	w.Counter("verneuil_copier_repacked_packs_total", "Packs left by repacks (no longer referenced by the latest version).", float64(s.RepackedPacks))
	w.Counter("verneuil_copier_repacked_bytes_total", "Bytes of pack records re-sent by repacks (per target).", float64(s.RepackedBytes))
	w.Counter("verneuil_copier_repack_errors_total", "Repacks given up (a failed or corrupt read, a missing pack, a failed PUT); the version kept its old locations.", float64(s.RepackErrors))
	w.Histogram("verneuil_replication_lag_seconds", "Time from commit to manifest visible in every target.",
		copier.LagBuckets, s.Lag.Counts, s.Lag.Sum)
	w.Gauge("verneuil_spool_databases", "Databases in the spool directory.", float64(s.Databases))
	w.Gauge("verneuil_spool_pending_versions", "Databases with a committed version not uploaded yet (intermediate versions are squashed, so at most one per database).", float64(s.PendingDatabases))
	w.Gauge("verneuil_spool_failing_databases", "Databases whose last upload attempt failed.", float64(s.FailingDatabases))
	w.Gauge("verneuil_spool_bytes", "Bytes in the spool directory (as of the last scan or upload).", float64(s.SpoolBytes))
	w.Gauge("verneuil_copier_queue_ready", "Databases waiting for a free worker.", float64(s.Ready))
	w.Gauge("verneuil_copier_queue_waiting", "Databases waiting for their coalescing interval or retry backoff.", float64(s.Waiting))
	w.Gauge("verneuil_copier_uploads_running", "Database uploads in progress.", float64(s.Running))
	w.Gauge("verneuil_copier_paused", "1 while uploads are paused because the blob store keeps failing.", b2f(s.Paused))
	w.Gauge("verneuil_copier_consecutive_failures", "Database uploads in a row that failed with blob-store errors.", float64(s.ConsecutiveFailures))
	w.Gauge("verneuil_copier_known_chunks", "Entries of the cache of chunks known to be in every target.", float64(s.KnownChunks))
	var wal, outside int
	for _, st := range sources {
		wal += int(b2f(st.WAL))
		outside += int(b2f(st.Outside))
	}
	w.Gauge("verneuil_spool_wal_databases", "Databases in WAL mode (captured by the VFS at commits; synced by the daemon under a WAL read lock when changed outside capture).", float64(wal))
	w.Gauge("verneuil_spool_changed_outside_capture_databases", "Databases whose file changed outside capture and could not be synced (as of the last check).", float64(outside))
	w.Counter("verneuil_copier_outside_syncs_total", "Syncs of databases changed outside capture (bypassing writers, forked children).", float64(h.syncs.Load()))
	w.Counter("verneuil_copier_outside_sync_errors_total", "Failed syncs of databases changed outside capture.", float64(h.syncErrors.Load()))
	w.Counter("verneuil_copier_panics_total", "Panics recovered in the copier (each failed one upload).", float64(s.Panics))
	w.Gauge("verneuil_copier_targets_ignoring_conditional_writes", "Targets found to ignore conditional writes (If-None-Match, If-Match).", float64(len(s.NoConditionalWrites)))
	if !perDB {
		return
	}
	dbs := c.DBStats()
	sort.Slice(dbs, func(i, j int) bool { return dbs[i].Key < dbs[j].Key })
	labels := func(d copier.DBSnapshot) []label {
		return []label{{Name: "db", Value: d.Path}, {Name: "key", Value: d.Key}}
	}
	type family struct {
		name, typ, help string
		value           func(d copier.DBSnapshot) float64
	}
	for _, f := range []family{
		{"verneuil_db_spool_bytes", "gauge", "Bytes in the database's spool.", func(d copier.DBSnapshot) float64 { return float64(d.SpoolBytes) }},
		{"verneuil_db_pending_versions", "gauge", "1 when a committed version is not uploaded yet.", func(d copier.DBSnapshot) float64 { return b2f(d.Pending) }},
		{"verneuil_db_pending_lag_seconds", "gauge", "Age of the oldest commit known to wait for upload; 0 when up to date.", func(d copier.DBSnapshot) float64 { return d.LagSeconds }},
		{"verneuil_db_uploads_total", "counter", "Upload attempts of the database by this copier.", func(d copier.DBSnapshot) float64 { return float64(d.Uploads) }},
		{"verneuil_db_upload_errors_total", "counter", "Failed upload attempts of the database.", func(d copier.DBSnapshot) float64 { return float64(d.Errors) }},
		{"verneuil_db_requests_total", "counter", "Blob-store requests for the database, retries included.", func(d copier.DBSnapshot) float64 { return float64(d.Requests) }},
		{"verneuil_db_request_retries_total", "counter", "Blob-store requests for the database retried after transient errors.", func(d copier.DBSnapshot) float64 { return float64(d.Retries) }},
		{"verneuil_db_manifests_total", "counter", "Manifests of the database published by this copier.", func(d copier.DBSnapshot) float64 { return float64(d.Manifests) }},
		{"verneuil_db_consecutive_failures", "gauge", "Upload attempts in a row that failed (0 after a success).", func(d copier.DBSnapshot) float64 { return float64(d.ConsecutiveFailures) }},
		{"verneuil_db_last_upload_timestamp_seconds", "gauge", "Unix time the last manifest published by this copier became visible.", func(d copier.DBSnapshot) float64 { return unixSeconds(d.LastVisible) }},
		{"verneuil_db_last_commit_timestamp_seconds", "gauge", "Source commit time of the last manifest published by this copier.", func(d copier.DBSnapshot) float64 { return unixSeconds(d.LastCommitTime) }},
		{"verneuil_db_wal", "gauge", "1 when the database is in WAL mode (captured by the VFS at commits; synced by the daemon under a WAL read lock when changed outside capture).", func(d copier.DBSnapshot) float64 { return b2f(sources[d.Key].WAL) }},
		{"verneuil_db_changed_outside_capture", "gauge", "1 when the file changed outside capture and could not be synced (as of the last check).", func(d copier.DBSnapshot) float64 { return b2f(sources[d.Key].Outside) }},
	} {
		for _, d := range dbs {
			if f.typ == "counter" {
				w.Counter(f.name, f.help, f.value(d), labels(d)...)
			} else {
				w.Gauge(f.name, f.help, f.value(d), labels(d)...)
			}
		}
	}
	for _, d := range dbs {
		w.Histogram("verneuil_db_replication_lag_seconds", "Time from commit to manifest visible, per database.",
			copier.LagBuckets, d.Lag.Counts, d.Lag.Sum, labels(d)...)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
