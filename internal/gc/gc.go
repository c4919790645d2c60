// Package gc collects a target's garbage: it deletes the manifests a
// retention policy no longer keeps, then the chunks that no retained
// manifest of any database references and that are older than a grace
// period, measured on the store's clock. The rule that makes this safe
// beside live copiers, readers and other collections is in docs/FORMAT.md
// ("Garbage collection").
//
// Memory is bounded: references are spilled per database into on-disk
// partitions by hash prefix, the chunk listing is streamed into matching
// partitions, and each partition is sorted and merged on its own.
package gc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// Defaults of Options.
const (
	DefaultGrace       = 24 * time.Hour
	DefaultParallel    = 16
	DefaultMaxSkew     = 5 * time.Minute
	DefaultObserveSpan = 30 * time.Second
)

// clockPrefix holds the marker objects a collection writes to read the
// store's clock.
const clockPrefix = "gc/clock/"

// Options configure a collection.
type Options struct {
	Policy retention.Policy
	// PolicyFor, if set, gives the policy of one database (by key)
	// instead of Policy (per-database overrides).
	PolicyFor func(key string) retention.Policy
	// Grace: an unreferenced chunk is deleted only when its modification
	// time is older than the collection's start minus Grace (store time).
	// It must exceed the copiers' known-chunk lifetime plus their publish
	// deadline (docs/FORMAT.md). Zero is allowed only with no writer
	// running.
	Grace time.Duration
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// TempDir holds the spill files (default os.TempDir()).
	TempDir string
	// Parallel bounds concurrent requests (default DefaultParallel).
	Parallel int
	// MaxSkew is the largest difference allowed between the local clock
	// and the store's (default DefaultMaxSkew).
	MaxSkew time.Duration
	// ObserveSpan is the longest time between re-reading a chunk's
	// modification time and sending its DELETE (default
	// DefaultObserveSpan); older observations are not acted on.
	ObserveSpan time.Duration
	// Progress, if set, is called now and then with the summary so far.
	Progress func(Summary)
	Logger   *slog.Logger
}

// Summary is what a collection found and did (bytes are stored sizes).
type Summary struct {
	DryRun               bool          `json:"dry_run"`
	Start                time.Time     `json:"start"` // store time
	Duration             time.Duration `json:"duration_ns"`
	Databases            int64         `json:"databases"`
	ManifestsKept        int64         `json:"manifests_kept"`
	ManifestBytesKept    int64         `json:"manifest_bytes_kept"`
	ManifestsDeleted     int64         `json:"manifests_deleted"`
	ManifestBytesDeleted int64         `json:"manifest_bytes_deleted"`
	ManifestsUnreadable  int64         `json:"manifests_unreadable"`
	ChunksKept           int64         `json:"chunks_kept"`
	ChunkBytesKept       int64         `json:"chunk_bytes_kept"`
	ChunksInGrace        int64         `json:"chunks_in_grace"` // unreferenced, kept for the grace period
	ChunksDeleted        int64         `json:"chunks_deleted"`
	ChunkBytesDeleted    int64         `json:"chunk_bytes_deleted"`
	ChunksDeferred       int64         `json:"chunks_deferred"` // candidates left for a later run (stale observation)
	// The chunk counts above include pack objects (packs/HASH), each
	// counted once; PacksDeleted counts those deleted.
	PacksDeleted int64 `json:"packs_deleted"`
	// MissingChunks counts references to chunks the listing did not
	// show: a retained manifest that cannot be restored, unless a
	// concurrent collection with another policy deleted the manifest.
	MissingChunks int64    `json:"missing_chunks"`
	MissingSample []string `json:"missing_sample,omitempty"`
	Requests      Requests `json:"requests"`
}

// Requests counts store requests by kind.
type Requests struct {
	ListPages int64 `json:"list_pages"`
	Gets      int64 `json:"gets"`
	Puts      int64 `json:"puts"`
	Stats     int64 `json:"stats"`
	Deletes   int64 `json:"deletes"` // requests (a batch counts once)
}

// run is one collection in progress.
type run struct {
	s    blob.Lifecycle
	opts Options
	log  *slog.Logger
	dir  string
	t0   time.Time // store time at start
	refs *partitions

	mu  sync.Mutex
	sum Summary

	listPages, gets, puts, stats, deletes atomic.Int64
}

// Run collects the store's garbage under opts.
func Run(ctx context.Context, s blob.Lifecycle, opts Options) (*Summary, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = DefaultMaxSkew
	}
	if opts.ObserveSpan <= 0 {
		opts.ObserveSpan = DefaultObserveSpan
	}
	if opts.Grace < 0 {
		return nil, errors.New("gc: negative grace period")
	}
	if err := opts.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	if opts.PolicyFor == nil {
		p := opts.Policy
		opts.PolicyFor = func(string) retention.Policy { return p }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	r := &run{s: s, opts: opts, log: opts.Logger}
	r.sum.DryRun = opts.DryRun
	dir, err := os.MkdirTemp(opts.TempDir, "verneuil-gc-")
	if err != nil {
		return nil, fmt.Errorf("gc: temp dir: %w", err)
	}
	r.dir = dir
	defer os.RemoveAll(dir)
	if r.t0, err = r.storeNow(ctx); err != nil {
		return nil, err
	}
	r.sum.Start = r.t0
	if r.refs, err = newPartitions(dir, "refs", hashRecordSize); err != nil {
		return nil, err
	}
	defer r.refs.close()
	if err := r.databases(ctx); err != nil {
		return r.summary(began), err
	}
	if err := r.chunks(ctx); err != nil {
		return r.summary(began), err
	}
	return r.summary(began), nil
}

func (r *run) summary(began time.Time) *Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sum
	s.Duration = time.Since(began)
	s.Requests = Requests{ListPages: r.listPages.Load(), Gets: r.gets.Load(), Puts: r.puts.Load(),
		Stats: r.stats.Load(), Deletes: r.deletes.Load()}
	return &s
}

func (r *run) progress() {
	if r.opts.Progress != nil {
		r.opts.Progress(*r.summary(time.Now()))
	}
}

// storeNow returns the store's clock: the modification time of a marker
// object written for the purpose (removed afterwards, and by later runs
// when a crash left it). A dry run writes nothing and uses the local
// clock. The local clock must agree within MaxSkew, since copiers time
// their cache entries and deadlines with it.
func (r *run) storeNow(ctx context.Context) (time.Time, error) {
	local := time.Now()
	if r.opts.DryRun {
		return local, nil
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	key := clockPrefix + hex.EncodeToString(id[:])
	r.puts.Add(1)
	if err := r.s.Put(ctx, key, []byte(local.UTC().Format(time.RFC3339Nano))); err != nil {
		return time.Time{}, fmt.Errorf("gc: write clock marker: %w", err)
	}
	r.stats.Add(1)
	info, err := r.s.Stat(ctx, key)
	if err != nil {
		return time.Time{}, fmt.Errorf("gc: read clock marker: %w", err)
	}
	r.deletes.Add(1)
	if err := r.s.Delete(ctx, key); err != nil {
		return time.Time{}, fmt.Errorf("gc: remove clock marker: %w", err)
	}
	t0 := info.ModTime
	if d := t0.Sub(local); d > r.opts.MaxSkew || -d > r.opts.MaxSkew {
		return time.Time{}, fmt.Errorf("gc: the store's clock (%s) and this host's (%s) differ by more than %s; refusing to collect", t0.UTC().Format(time.RFC3339), local.UTC().Format(time.RFC3339), r.opts.MaxSkew)
	}
	// Markers left by runs killed between write and removal.
	var stale []string
	r.listPages.Add(1)
	err = r.s.Walk(ctx, clockPrefix, func(page []blob.ObjectInfo) error {
		for _, o := range page {
			if t0.Sub(o.ModTime) > time.Hour {
				stale = append(stale, o.Key)
			}
		}
		return nil
	})
	if err == nil && len(stale) > 0 {
		r.deletes.Add(1)
		err = r.s.Delete(ctx, stale...)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("gc: stale clock markers: %w", err)
	}
	return t0, nil
}

// dbKeyOf splits "dbs/KEY/REST" into KEY and REST.
func dbKeyOf(key string) (db, rest string, ok bool) {
	s, ok := strings.CutPrefix(key, "dbs/")
	if !ok {
		return "", "", false
	}
	db, rest, ok = strings.Cut(s, "/")
	return db, rest, ok && db != ""
}
