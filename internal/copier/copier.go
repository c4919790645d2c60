// Package copier owns uploading: one bounded pool per process drains spool
// directories into the blob-store targets, chunks first and the manifest
// last.
//
// Scheduling. Work is driven by Notify signals (the tracker published a
// manifest) and by a slow background scan of the spool root that picks up
// spools left by exited processes. A database is uploaded about once per
// Options.Interval at most (commits in between are coalesced into one
// manifest). The pacing is a per-database GCRA (a token bucket of depth
// one with tolerance Interval/2): each upload that publishes a version
// pushes the database's theoretical time forward by one interval from when
// it became due, and the next may start up to half an interval early. A
// hot database thus publishes exactly once per interval, no two of its
// versions become due less than half an interval apart, and a run that
// publishes none (the deferred history object of the latest version,
// history.go, at most one per version and per HistoryInterval) does not
// delay the next version. A database committing about once per interval
// is not made to wait by small jitter in its commits or by a busy moment
// in the pool (with strict spacing from the last start, every such delay
// would add to its lag for as long as it kept committing). A single
// dispatcher goroutine owns one timer for the earliest due database and
// hands ready databases to Options.Workers workers: idle databases cost no
// goroutine, no timer and no request, only a small record.
//
// Failures. Each request runs under a process-wide token-bucket rate limit
// and is retried on transient errors with capped exponential backoff and
// full jitter; errors the store classifies as permanent (blob.ErrPermanent)
// are not retried. A database whose upload fails is retried later with its
// own capped exponential backoff, and the reason is recorded in its spool
// (spool.LastErrorFile, shown by `verneuilctl status`) and in the stats.
// When uploads of several databases in a row fail with store errors, the
// copier pauses and probes the store with one upload at a time, backing
// off, instead of sending every database's requests to a store that is
// down; when a probe succeeds, waiting databases are retried promptly.
//
// Consistency. The "latest" object of a database only moves forward: it is
// replaced with a conditional write on the version read (or last written)
// and only by a manifest with a larger sequence number, so racing copiers
// in several processes or hosts never make it regress. Within a host, the
// spool's upload lock serialises uploaders.
package copier

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// Defaults for Options fields left zero.
const (
	DefaultWorkers          = 4
	DefaultInterval         = time.Second
	DefaultScanInterval     = 30 * time.Second
	DefaultRateLimit        = 1000
	DefaultMaxAttempts      = 6
	DefaultChunkParallelism = 16
	DefaultRequestTimeout   = 30 * time.Second
	DefaultRetryMin         = time.Second
	DefaultRetryMax         = 30 * time.Second
	DefaultPauseAfter       = 3
	DefaultProbeMax         = 5 * time.Second
	DefaultKnownChunks      = 1 << 17
	DefaultKnownChunkTTL    = time.Hour
	DefaultGCGrace          = 24 * time.Hour
	DefaultScanBatch        = 1000
	DefaultFullScanInterval = time.Hour
	DefaultReclaimAfter     = time.Hour
	DefaultForgetIdle       = 10 * time.Minute
	requestBackoffMin       = 50 * time.Millisecond
	requestBackoffMax       = 5 * time.Second
	logRepeatFailureEvery   = 5 * time.Minute
	uploadRestartsPerCycle  = 3
)

// Options configures a Copier.
type Options struct {
	SpoolDir string
	Targets  []blob.Store
	// Workers is the number of concurrent database uploads; default
	// DefaultWorkers.
	Workers int
	// Interval paces the versions one database publishes in the
	// background: one per interval when it is hot, never two due less
	// than Interval/2 apart (see the package documentation); default
	// DefaultInterval.
	Interval time.Duration
	// ScanInterval is the period of the background spool scan (jittered
	// ±25%); negative disables it. Default DefaultScanInterval.
	ScanInterval time.Duration
	// ScanMinAge: the scan uploads a spool only when its staged manifest
	// is at least this old, leaving fresh spools of live processes to
	// their own copier. Default 2×Interval; negative means no minimum.
	ScanMinAge time.Duration
	// ScanBatch bounds the spools one scan examines (scan.go): a scan
	// goes on where the last one stopped, so start-up and every scan
	// cost the same whatever the number of spools. Default
	// DefaultScanBatch.
	ScanBatch int
	// FullScanInterval: every scan examines the spools marked dirty
	// (spool.DirtyDir: written at each publish, by any process), so its
	// work follows the databases that changed; a full pass over every
	// spool (ScanBatch per scan, for spools without a marker: older
	// versions, a lost marker, and the reclaim of deleted databases)
	// starts with the first scan and then this long after the previous
	// pass ended. Default DefaultFullScanInterval; negative runs passes
	// back to back.
	FullScanInterval time.Duration
	// ReclaimAfter: the scan removes the spool of a database whose file
	// is gone once nothing in it is pending and it was not written for
	// this long (spool.Reclaim). Default DefaultReclaimAfter; negative
	// never reclaims.
	ReclaimAfter time.Duration
	// ForgetIdle: the record of a database (its statistics, its delta
	// base) is dropped when it had nothing to do for this long, and made
	// again at its next commit or scan. Default DefaultForgetIdle.
	ForgetIdle time.Duration
	// KeepRecords keeps a record for every spool the scan sees, idle or
	// not (per-database statistics and metrics of every database, for
	// the copier daemon); ForgetIdle then only drops removed spools.
	KeepRecords bool
	// RateLimit is in blob-store requests per second, process-wide, and
	// RateBurst the bucket size. They apply when a target is remote: a
	// copier whose targets are all local directories (file://) is not
	// rate-limited.
	RateLimit float64
	RateBurst int
	// ChunkParallelism is how many chunks of one database upload are sent
	// at once; default DefaultChunkParallelism.
	ChunkParallelism int
	// PackBytes bounds a pack object: an upload with at least
	// PackMinChunks new chunks sends them in packs of at most this many
	// bytes (pack.go); default DefaultPackBytes, negative: no packs.
	PackBytes int
	// RepackThreshold and RepackBytes drive repacking (repack.go): the
	// live records of packs under RepackThreshold percent live are
	// re-sent in new packs, at most RepackBytes of them per upload.
	// Defaults DefaultRepackThreshold and 2×PackBytes; a negative
	// threshold never repacks.
	RepackThreshold int
	RepackBytes     int
	// MaxAttempts bounds the attempts of one request (transient errors);
	// default DefaultMaxAttempts.
	MaxAttempts int
	// RequestTimeout bounds one request; default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between background upload
	// attempts of a failing database (and of the store probe).
	RetryMin, RetryMax time.Duration
	// PauseAfter is how many database uploads in a row must fail with
	// store errors before uploads pause and probe the store; default
	// DefaultPauseAfter; negative disables pausing. ProbeMax caps the
	// (exponential, jittered) time between probes; default
	// min(DefaultProbeMax, RetryMax).
	PauseAfter int
	ProbeMax   time.Duration
	// KnownChunks bounds the cache of chunks known present in every
	// target (about 50 bytes each); KnownChunkTTL is how long an entry is
	// trusted. A gc of the store must not delete unreferenced chunks
	// younger than KnownChunkTTL.
	KnownChunks   int
	KnownChunkTTL time.Duration
	// GCGrace is the grace period of the collections (verneuilctl gc)
	// that run on the targets; default DefaultGCGrace. The copier keeps
	// within it (docs/FORMAT.md, "Garbage collection"): a known-chunk
	// entry is trusted for at most GCGrace/4, and a manifest is published
	// at most GCGrace/4 after its upload attempt began (later, the
	// attempt starts again and re-validates the chunks it relies on).
	GCGrace time.Duration
	Logger  *slog.Logger
	// OnRescan, if set, is called when staged data of a database was
	// found lost or damaged and the spool was marked for a rescan, so that
	// an in-process tracker rescans at its next capture.
	OnRescan func(key string)
	// OnResequence, if set, is called when a manifest of key was
	// renumbered seq because its clock-derived number was not above the
	// stored one, so that an in-process tracker numbers later versions
	// after it.
	OnResequence func(key string, seq uint64)
	// TakeOver publishes staged versions as latest even where the
	// store's latest is numbered at or above them without being an
	// earlier state (they are renumbered after it, with a warning), for
	// an operator who checked that this host is the database's only
	// writer (verneuilctl sync --take-over).
	TakeOver bool
	// FullEvery bounds delta chains: a full manifest is published, then
	// deltas against it, and a full one again every FullEvery versions
	// (or when a delta would not be small). Default DefaultFullEvery;
	// negative or 1 publishes only full manifests (format 1), for stores
	// read by builds that do not read format 2.
	FullEvery int
	// HistoryInterval: a version is written to history (manifests/SEQ)
	// when at least this long passed since this process last wrote a
	// history object of the database, when it starts a new delta base,
	// and by every synchronous upload (flush); the others are published
	// as latest only, and the last of them gets its history object once
	// this long passed without a newer one (history.go). 0 writes every
	// version to history.
	HistoryInterval time.Duration
	// InlineChunks bounds the chunks a version published as latest only
	// carries inside its latest object instead of chunks/HASH objects
	// (inline.go, with at most InlineMaxBytes); default
	// DefaultInlineChunks, negative: none.
	InlineChunks int
}

// Copier uploads spooled databases. Its methods are safe for concurrent
// use.
type Copier struct {
	opts    Options
	log     *slog.Logger
	limit   *rate.Limiter
	stats   stats
	known   *knownSet
	sizes   *packSizes     // sizes of packs (repack.go)
	schemes []atomic.Int32 // per target: how to predict the version of a write
	conds   []atomic.Int32 // per target: whether it enforces conditional writes (safety.go)
	probeMu sync.Mutex     // one conditional-write probe at a time

	mu        sync.Mutex
	dbs       map[string]*dbState
	idle      map[string]idleSpool // spools known uploaded, without a record (scan.go)
	scanDir   *os.File             // the scan's place in the spool directory; guarded by scanning
	passEnd   time.Time            // when the last full pass ended; guarded by scanning
	dirtyNext string               // where the next scan of dirty spools starts; guarded by scanning
	ready     fifo                 // databases due now, in order
	delay     delayHeap            // databases waiting for their due time
	running   int
	started   bool
	closed    bool
	breaker   breaker
	wake      chan struct{}
	stop      chan struct{}
	work      chan *dbState
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	scanning  sync.Mutex
}

type schedState uint8

const (
	idle    schedState = iota // nothing to do
	waiting                   // in delay, until due
	ready                     // in the ready queue
	running                   // a worker (background) is uploading it
)

// dbState is what the copier keeps per database: a few hundred bytes, no
// goroutine, no timer.
type dbState struct {
	key string
	// up is held while the database is uploaded by this process.
	up sync.Mutex
	// latest caches, per target, the version of the "latest" object after
	// this process last wrote it; guarded by up.
	latest []latestGuess
	// bases holds, per target, the full manifest later versions are
	// published as deltas against (delta.go).
	bases []deltaBase
	// hist is what this process wrote to the database's history
	// (history.go); guarded by Copier.mu.
	hist history

	// Guarded by Copier.mu.
	sched        schedState
	again        bool      // signalled while running: upload again
	againSince   time.Time // first signal while running
	due          time.Time // when the scheduled upload is (or was) due
	index        int       // in delay; -1 when absent
	tat          time.Time // pacing: the next upload's theoretical due time
	pendingSince time.Time // first signal not yet uploaded
	backoff      int       // level of the retry backoff
	probe        bool      // this run probes a paused store
	retryAt      time.Time // planned by a failed background upload
	touched      time.Time // last use of the record (scan.go forgets idle ones)

	path         string
	clean        spool.Stamp // staged manifest known to be uploaded
	usageStale   bool
	pending      bool
	stagedCommit time.Time
	spoolBytes   int64

	requests, retries atomic.Int64
	// chunksTodo and chunksDone: the changed chunks of the upload in
	// progress (or the last one), and how many of them are in every
	// target; a flush that gives up says how far it got.
	chunksTodo, chunksDone atomic.Int64
	uploads, errs          int64
	manifests, chunks      int64
	chunkBytes             int64
	lastSeq                uint64
	lastCommit             time.Time
	lastVisible            time.Time
	lastLag                float64
	lastSignal             time.Time
	lag                    *histogram

	failures    int // consecutive failed uploads
	failedSince time.Time
	lastErr     string
	lastErrAt   time.Time
	lastLogged  time.Time
	loggedErr   string
}

// allLocal says every target is a local directory (a store that names
// itself file://...), which a request rate limit would only slow down.
func allLocal(targets []blob.Store) bool {
	for _, t := range targets {
		if !strings.HasPrefix(t.String(), "file://") {
			return false
		}
	}
	return len(targets) > 0
}

// New returns a Copier with defaults applied; Start launches its workers.
func New(opts Options) *Copier {
	if opts.FullEvery == 0 {
		opts.FullEvery = DefaultFullEvery
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.ScanBatch <= 0 {
		opts.ScanBatch = DefaultScanBatch
	}
	if opts.FullScanInterval == 0 {
		opts.FullScanInterval = DefaultFullScanInterval
	}
	if opts.ReclaimAfter == 0 {
		opts.ReclaimAfter = DefaultReclaimAfter
	}
	if opts.ForgetIdle <= 0 {
		opts.ForgetIdle = DefaultForgetIdle
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.ScanInterval == 0 {
		opts.ScanInterval = DefaultScanInterval
	}
	if opts.ScanMinAge == 0 {
		opts.ScanMinAge = 2 * opts.Interval
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.RateBurst <= 0 {
		opts.RateBurst = int(max(min(opts.RateLimit, math.MaxInt32), 1))
	}
	if allLocal(opts.Targets) {
		opts.RateLimit = math.Inf(1)
	}
	if opts.ChunkParallelism <= 0 {
		opts.ChunkParallelism = DefaultChunkParallelism
	}
	if opts.PackBytes == 0 {
		opts.PackBytes = DefaultPackBytes
	}
	if opts.InlineChunks == 0 {
		opts.InlineChunks = DefaultInlineChunks
	}
	opts.PackBytes = min(opts.PackBytes, manifest.MaxPackSize)
	repackDefaults(&opts)
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = DefaultRetryMin
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = DefaultRetryMax
	}
	opts.RetryMax = max(opts.RetryMax, opts.RetryMin)
	if opts.PauseAfter == 0 {
		opts.PauseAfter = DefaultPauseAfter
	}
	if opts.ProbeMax <= 0 {
		opts.ProbeMax = min(DefaultProbeMax, opts.RetryMax)
	}
	if opts.KnownChunks <= 0 {
		opts.KnownChunks = DefaultKnownChunks
	}
	if opts.KnownChunkTTL <= 0 {
		opts.KnownChunkTTL = DefaultKnownChunkTTL
	}
	if opts.GCGrace <= 0 {
		opts.GCGrace = DefaultGCGrace
	}
	opts.KnownChunkTTL = min(opts.KnownChunkTTL, opts.GCGrace/4)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Copier{
		opts:    opts,
		log:     opts.Logger,
		limit:   newLimiter(opts.RateLimit, opts.RateBurst),
		known:   newKnownSet(opts.KnownChunks, opts.KnownChunkTTL),
		sizes:   &packSizes{},
		schemes: make([]atomic.Int32, len(opts.Targets)),
		conds:   make([]atomic.Int32, len(opts.Targets)),
		dbs:     map[string]*dbState{},
		idle:    map[string]idleSpool{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		work:    make(chan *dbState),
	}
	c.declareTargets()
	return c
}

// Start launches the dispatcher, the workers and the background scan (whose
// first pass runs at once). ctx bounds the background uploads; Close stops
// them gracefully.
func (c *Copier) Start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1 + c.opts.Workers)
	go func() {
		defer c.wg.Done()
		c.keepRunning(ctx, "dispatcher", c.dispatcher)
	}()
	for range c.opts.Workers {
		go c.worker(ctx)
	}
	if c.opts.ScanInterval > 0 {
		c.wg.Add(1)
		go c.scanner(ctx)
	}
}

// Close stops background work. Uploads in flight may finish until ctx is
// done; then they are cancelled, and Close returns an error saying so.
// Databases still waiting stay in the spool for the next process, the
// copier daemon or `verneuilctl flush`; call UploadAll first to drain.
// Synchronous uploads (Upload, UploadAll) keep working after Close.
func (c *Copier) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	cancel := c.cancel
	c.mu.Unlock()
	defer c.closeScanDir()
	if cancel == nil {
		return nil // never started
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		cancel()
		return nil
	case <-ctx.Done():
	}
	cancel() // abort in-flight requests; they return promptly
	<-done
	return fmt.Errorf("close copier: in-flight uploads cancelled: %w", ctx.Err())
}

// getLocked returns the state of key, creating it. c.mu must be held.
func (c *Copier) getLocked(key string) *dbState {
	st := c.dbs[key]
	if st == nil {
		st = &dbState{key: key, index: -1}
		if i, ok := c.idle[key]; ok {
			st.clean, st.spoolBytes = i.stamp, i.bytes
			delete(c.idle, key)
		}
		c.dbs[key] = st
	}
	st.touched = time.Now()
	return st
}

// Notify signals that the spool of key has a new manifest. It never
// blocks: the upload is scheduled for when the database's coalescing
// interval allows (at once if it was not uploaded recently).
func (c *Copier) Notify(key string) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	st := c.getLocked(key)
	st.pending = true
	st.usageStale = true
	if st.sched == running {
		if st.againSince.IsZero() {
			st.againSince = now
		}
	} else if st.pendingSince.IsZero() {
		st.pendingSince = now
	}
	c.requestLocked(st, now)
}

// requestLocked schedules an upload of st as soon as coalescing allows. A
// database that waits (coalescing or retry backoff) keeps its due time.
func (c *Copier) requestLocked(st *dbState, now time.Time) {
	switch st.sched {
	case running:
		st.again = true
	case idle:
		c.scheduleLocked(st, c.nextSlot(st), now)
	case waiting:
		c.historyWaitEndedLocked(st, now) // history.go
	}
}

// nextSlot is the earliest time the next background upload of st may be
// due: its theoretical time less the tolerance.
func (c *Copier) nextSlot(st *dbState) time.Time {
	if st.tat.IsZero() {
		return time.Time{}
	}
	return st.tat.Add(-c.opts.Interval / 2)
}

func (c *Copier) scheduleLocked(st *dbState, due, now time.Time) {
	if !due.After(now) {
		st.due = now
		st.sched = ready
		c.ready.push(st)
		c.wakeup()
		return
	}
	st.sched = waiting
	st.due = due
	heap.Push(&c.delay, st)
	if st.index == 0 {
		c.wakeup()
	}
}

func (c *Copier) wakeup() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// dispatcher moves due databases to the ready queue and hands them to
// workers, holding them while uploads are paused.
func (c *Copier) dispatcher(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var held *dbState // dequeued, waiting for a free worker
	for {
		c.mu.Lock()
		now := time.Now()
		for c.delay.Len() > 0 && !c.delay[0].due.After(now) {
			st := heap.Pop(&c.delay).(*dbState)
			st.sched = ready
			c.ready.push(st)
		}
		wait := time.Duration(-1)
		if held == nil && c.ready.len() > 0 {
			switch {
			case now.Before(c.breaker.pauseUntil):
				wait = c.breaker.pauseUntil.Sub(now)
			case c.breaker.paused && c.breaker.probing:
				// One probe at a time; its end wakes us.
			default:
				held = c.ready.pop()
				held.sched = running
				c.running++
				if c.breaker.paused {
					c.breaker.probing = true
					held.probe = true
				}
			}
		}
		if c.delay.Len() > 0 {
			if d := c.delay[0].due.Sub(now); wait < 0 || d < wait {
				wait = d
			}
		}
		c.mu.Unlock()

		var tick <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		var out chan *dbState
		if held != nil {
			out = c.work
		}
		select {
		case out <- held:
			held = nil
		case <-tick:
		case <-c.wake:
		case <-c.stop:
		case <-ctx.Done():
		}
		timer.Stop()
		select {
		case <-c.stop:
		case <-ctx.Done():
		default:
			continue
		}
		if held != nil {
			c.mu.Lock()
			c.finishLocked(held)
			held.sched = idle
			c.mu.Unlock()
		}
		return
	}
}

func (c *Copier) worker(ctx context.Context) {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-ctx.Done():
			return
		case st := <-c.work:
			_ = c.safely("upload worker", func() error { c.run(ctx, st); return nil }) // logged and counted
		}
	}
}

// run uploads st in the background and schedules what follows.
func (c *Copier) run(ctx context.Context, st *dbState) {
	c.mu.Lock()
	st.again = false
	st.againSince = time.Time{}
	st.hist.waiting = false
	since := st.pendingSince
	slot := st.due
	if slot.IsZero() {
		slot = time.Now()
	}
	c.mu.Unlock()

	res, err := c.uploadDB(ctx, st, since, false, nil)

	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finishLocked(st)
	// The pacing counts versions: a run that published none (a deferred
	// history object, a state a flush uploaded) keeps the next version's
	// slot, which charging it delayed by an interval every
	// HistoryInterval. Nothing reads tat while the database runs.
	if res.published || res.busy || err != nil {
		st.tat = later(st.tat, slot).Add(c.opts.Interval)
	}
	if ctx.Err() != nil {
		// Closing: the spool keeps the work for the next process.
		st.sched = idle
		return
	}
	switch {
	case res.gone:
		st.sched = idle // the spool was removed
		st.pending = false
	case res.busy:
		// Another uploader holds the database; look again later.
		st.pendingSince = earliest(st.pendingSince, st.againSince)
		st.againSince = time.Time{}
		c.scheduleLocked(st, now.Add(c.opts.Interval), now)
	case err != nil:
		st.pendingSince = earliest(st.pendingSince, st.againSince)
		st.againSince = time.Time{}
		due := st.retryAt
		if due.IsZero() { // failed before uploadDB planned a retry
			st.backoff++
			due = now.Add(c.backoff(st.backoff))
		}
		st.retryAt = time.Time{}
		c.scheduleLocked(st, due, now)
	default:
		st.backoff = 0
		if res.storeOK {
			c.breakerOKLocked(now)
		}
		st.pendingSince = st.againSince
		st.againSince = time.Time{}
		if st.again {
			st.again = false
			c.scheduleLocked(st, c.nextSlot(st), now)
		} else if due, ok := c.historyDueLocked(st); ok {
			c.scheduleLocked(st, due, now) // history.go
		} else {
			st.sched = idle
		}
	}
}

// finishLocked ends the run of st (a worker's or one held by the
// dispatcher).
func (c *Copier) finishLocked(st *dbState) {
	c.running--
	if st.probe {
		st.probe = false
		c.breaker.probing = false
		c.wakeup()
	}
}

// backoff returns the jittered delay before background attempt n+1 of a
// failing database: RetryMin·2^(n-1), capped at RetryMax, times a random
// factor in [0.5, 1].
func (c *Copier) backoff(n int) time.Duration { return jittered(c.opts.RetryMin, c.opts.RetryMax, n) }

func jittered(base, ceiling time.Duration, n int) time.Duration {
	d := ceiling
	if n < 30 {
		d = min(base<<max(n-1, 0), ceiling)
	}
	return d/2 + rand.N(d/2+1)
}

func (c *Copier) describeLocked(st *dbState) string {
	if st.path != "" {
		return st.path
	}
	return st.key
}
