// Package replicator wires a process's replication: it opens the targets,
// starts the tracker behind the replicating VFS and the copier that uploads
// spools, and registers the VFSs. The public package verneuil, the loadable
// extension (cmd/verneuil-ext), verneuilctl, the SQLite TCL-suite hook and
// the tests use it; only the public package's API is meant for
// applications.
package replicator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/verneuil-go/verneuil/internal/blob"
	_ "github.com/verneuil-go/verneuil/internal/blob/fileblob" // file:// targets
	_ "github.com/verneuil-go/verneuil/internal/blob/s3blob"   // s3:// targets
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/copier"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/replica"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// VFSName is the name of the replicating VFS.
const VFSName = "verneuil"

// SnapshotVFSName is the name of the read-only VFS that reads replicas
// straight from the store ("file:verneuil://HOST/PATH?vfs=verneuil_snapshot").
const SnapshotVFSName = "verneuil_snapshot"

// Replicator is the running replication of a process: the tracker behind
// the VFS and the copier that uploads spools.
type Replicator struct {
	// closed is set by Close: Flush and FlushDB then fail with ErrClosed.
	closed  atomic.Bool
	cfg     *config.Config
	log     *slog.Logger
	stores  []blob.Store
	tracker *tracker.Manager
	copier  *copier.Copier
	// snapshots reads replicas for the verneuil_snapshot VFS.
	snapshots *replica.Manager
}

var (
	activeMu sync.Mutex
	active   *Replicator
)

// Start configures replication for the process and registers the VFS. Only
// one Replicator may run at a time; Close it before starting another.
func Start(ctx context.Context, cfg *config.Config) (*Replicator, error) {
	return StartWithHooks(ctx, cfg, nil)
}

// ErrClosed is returned by Flush and FlushDB after Close: what is
// committed after Close is not replicated, so no flush can vouch for it.
var ErrClosed = errors.New("verneuil: replication is closed")

// HookWrapper puts a layer between the VFS and the tracker: it receives the
// tracker and the open targets and returns what the VFS calls. Tools and
// tests of this module use it (the SQLite TCL-suite hook checks every
// commit through it); applications use Start.
type HookWrapper func(t *tracker.Manager, targets []blob.Store) (sqlite3vfs.Hooks, error)

// StartWithHooks is Start with the VFS hooks built by wrap (nil: the
// tracker itself).
func StartWithHooks(ctx context.Context, cfg *config.Config, wrap HookWrapper) (*Replicator, error) {
	if cfg == nil {
		cfg = config.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	activeMu.Lock()
	defer activeMu.Unlock()
	if active != nil {
		return nil, errors.New("verneuil: replication already started in this process")
	}
	r, err := newReplicator(ctx, cfg, NewLogger(cfg))
	if err != nil {
		return nil, err
	}
	if err := sqlite3vfs.Register(VFSName, cfg.MakeDefault, cfg.ChunkSize); err != nil {
		r.closeStores()
		return nil, err
	}
	if err := r.startSnapshots(); err != nil {
		r.closeStores()
		return nil, err
	}
	if cfg.ReplicateEnabled() {
		var hooks sqlite3vfs.Hooks = r.tracker
		if wrap != nil {
			if hooks, err = wrap(r.tracker, r.stores); err != nil {
				r.closeStores()
				return nil, err
			}
		}
		sqlite3vfs.SetHooks(hooks, r.log)
	}
	active = r
	return r, nil
}

// startSnapshots registers the read-replica VFS, reading from the first
// target (as restores do).
func (r *Replicator) startSnapshots() error {
	cfg := r.cfg
	m, err := replica.New(replica.Options{
		Store:           r.stores[0],
		CacheDir:        cfg.CacheDir,
		DiskCache:       cfg.SnapshotDiskCache,
		RefreshInterval: cfg.SnapshotRefreshInterval.Duration(),
		Timeout:         cfg.SnapshotTimeout.Duration(),
		Hostname:        cfg.Hostname,
		LocalKey: func(path string) (string, error) {
			_, key, err := ReplicaName(cfg, path, "")
			return key, err
		},
		Mem:    sqlite3vfs.SnapshotMemCache(),
		Logger: r.log.With("component", "snapshot"),
	})
	if err != nil {
		return err
	}
	r.snapshots = m
	return sqlite3vfs.RegisterSnapshot(SnapshotVFSName, m, cfg.SnapshotMemoryCache)
}

// SnapshotStats returns the read-replica VFS's counters: requests and
// caches of the Go side (replica) and of the C side (memory cache).
func (r *Replicator) SnapshotStats() (replica.Stats, sqlite3vfs.SnapshotStats) {
	return r.snapshots.Stats(), sqlite3vfs.ReadSnapshotStats()
}

// NewLogger returns the slog logger a configuration asks for, on stderr.
func NewLogger(cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func newReplicator(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Replicator, error) {
	r := &Replicator{cfg: cfg, log: log}
	stores, allOpen, err := openTargets(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	r.stores = stores
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		r.closeStores()
		return nil, fmt.Errorf("create spool directory: %w", err)
	}
	packBytes, repack := Packing(cfg)
	r.copier = copier.New(copier.Options{
		SpoolDir:        cfg.SpoolDir,
		Targets:         stores,
		Workers:         cfg.CopierWorkers,
		FullEvery:       cfg.MaxDeltaChain,
		PackBytes:       packBytes,
		RepackThreshold: repack,
		Interval:        cfg.UploadInterval.Duration(),
		ScanInterval:    cfg.ScanInterval.Duration(),
		RateLimit:       cfg.RateLimit,
		RateBurst:       cfg.RateBurst,
		GCGrace:         cfg.GCGrace.Duration(),
		HistoryInterval: cfg.HistoryEvery(),
		Logger:          log.With("component", "copier"),
		OnRescan: func(key string) {
			if t := r.tracker; t != nil {
				t.ForceRescan(key)
			}
		},
		OnResequence: func(key string, seq uint64) {
			if t := r.tracker; t != nil {
				t.ContinueAfter(key, seq)
			}
		},
	})
	// Before the tracker adopts a database's spool: a spool uploaded to
	// other targets is rescanned, so that these get a complete version.
	// (With a target not open yet, its identity is not known for sure: the
	// uploads check chunks in it instead.)
	var checkSpool func(*spool.Dir) error
	if allOpen {
		checkSpool = r.copier.MarkForeignForRescan
	}
	r.tracker = tracker.New(tracker.Options{
		SpoolDir:     cfg.SpoolDir,
		WALQueues:    sqlite3vfs.WALQueueFor,
		ChunkSize:    cfg.ChunkSize,
		Hostname:     cfg.Hostname,
		Names:        cfg.Names,
		Uploader:     r.copier,
		Logger:       log.With("component", "tracker"),
		FlushTimeout: cfg.FlushTimeout.Duration(),
		FlushOnClose: cfg.FlushOnClose,
		CheckSpool:   checkSpool,
	})
	r.tracker.Start()
	// Started after the tracker exists: OnRescan may be called at once.
	r.copier.Start(context.WithoutCancel(ctx))
	return r, nil
}

// openTargets opens the targets for replication: a target that cannot be
// opened now (a directory on a volume not mounted yet) must not stop the
// application, so it is opened at its first request that can, and fails
// uploads (logged, in the stats, `verneuilctl status` and flush results)
// until then. Only malformed URLs and unknown schemes are errors.
func openTargets(ctx context.Context, cfg *config.Config, log *slog.Logger) (stores []blob.Store, allOpen bool, err error) {
	allOpen = true
	for _, t := range cfg.Targets {
		if t.Kind() == "file" && t.Dir() == config.Default().Targets[0].Dir() {
			if err := os.MkdirAll(t.Dir(), 0o700); err != nil {
				log.Error("create the default target directory", "dir", t.Dir(), "err", err)
			}
		}
		s, err := blob.OpenLazy(ctx, t.URL, blob.Options{Endpoint: t.Endpoint, Region: t.Region, PathStyle: t.PathStyle})
		if s == nil {
			for _, s := range stores {
				s.Close()
			}
			return nil, false, err
		}
		if err != nil {
			allOpen = false
			log.Error("target unavailable; writes are spooled and uploaded when it becomes available", "target", s.String(), "err", err)
		}
		stores = append(stores, s)
	}
	return stores, allOpen, nil
}

// OpenTargets opens the blob stores a configuration names. The embedded
// default's directory is created; other local targets must exist.
func OpenTargets(ctx context.Context, cfg *config.Config) ([]blob.Store, error) {
	var stores []blob.Store
	for _, t := range cfg.Targets {
		if t.Kind() == "file" && t.Dir() == config.Default().Targets[0].Dir() {
			if err := os.MkdirAll(t.Dir(), 0o700); err != nil {
				return nil, fmt.Errorf("create default target: %w", err)
			}
		}
		s, err := blob.Open(ctx, t.URL, blob.Options{Endpoint: t.Endpoint, Region: t.Region, PathStyle: t.PathStyle})
		if err != nil {
			for _, s := range stores {
				s.Close()
			}
			return nil, err
		}
		stores = append(stores, s)
	}
	return stores, nil
}

// Flush uploads everything committed so far through this process and
// returns once it is in every target.
func (r *Replicator) Flush(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if err := r.tracker.Flush(ctx); err != nil {
		return err
	}
	return r.copier.UploadAll(ctx)
}

// Targets returns the open blob stores, in configuration order.
func (r *Replicator) Targets() []blob.Store { return r.stores }

// Config returns the configuration in force.
func (r *Replicator) Config() *config.Config { return r.cfg }

// Stats returns the copier's counters.
func (r *Replicator) Stats() copier.Snapshot { return r.copier.Stats() }

// DBStats returns the copier's per-database counters and state, for the
// databases it has a record of: those that committed, uploaded or had
// pending work in the last 10 minutes (idle ones are forgotten, and their
// counters restart when they come back).
func (r *Replicator) DBStats() []copier.DBSnapshot { return r.copier.DBStats() }

// Close builds pending manifests, tries to upload them within ctx, and
// stops background work. The VFS stays registered (SQLite cannot
// unregister a VFS that connections may use) but captures nothing more.
// Connections still open keep passing through unreplicated after a new
// Start (a warning is logged): reopen them to replicate again.
func (r *Replicator) Close(ctx context.Context) error {
	activeMu.Lock()
	defer activeMu.Unlock()
	if active != r {
		return nil
	}
	r.closed.Store(true)
	sqlite3vfs.SetHooks(nil, nil)
	sqlite3vfs.SetSnapshotManager(nil)
	r.snapshots.Shutdown()
	active = nil
	errs := []error{r.tracker.Close(ctx)}
	if ctx.Err() == nil {
		errs = append(errs, r.copier.UploadAll(ctx))
	}
	errs = append(errs, r.copier.Close(ctx))
	r.closeStores()
	return errors.Join(errs...)
}

func (r *Replicator) closeStores() {
	for _, s := range r.stores {
		s.Close()
	}
}

// ReplicaName returns the replica name and key of the database at path:
// the configured name for it, or HOST:CANONICAL_PATH where HOST is hostname
// when given, else the configured or system host name.
func ReplicaName(cfg *config.Config, path, hostname string) (name, key string, err error) {
	canon, err := names.Canonical(path)
	if err != nil {
		return "", "", err
	}
	if n, ok := cfg.ReplicaName(canon); ok && hostname == "" {
		return n, names.Key(n), nil
	}
	if hostname == "" {
		hostname = names.Hostname(cfg.Hostname)
	}
	name = names.Replica(hostname, canon)
	return name, names.Key(name), nil
}

// Packing returns the copier's PackBytes and RepackThreshold options
// for cfg's pack_bytes and repack_threshold, whose 0 (no packs, no
// repacking) is negative there (0 takes the copier's default).
func Packing(cfg *config.Config) (packBytes, repackThreshold int) {
	packBytes, repackThreshold = cfg.PackBytesOrDefault(), cfg.RepackThresholdOrDefault()
	if packBytes == 0 {
		packBytes = -1
	}
	if repackThreshold == 0 {
		repackThreshold = -1
	}
	return packBytes, repackThreshold
}
