// Package copier owns uploading: one bounded pool per process drains spool
// directories into the blob-store targets, chunks first and the manifest
// last, with retries, a process-wide request rate limit, coalescing of hot
// databases (at most one manifest upload per database per interval) and a
// slow background scan that picks up spools left by exited processes.
//
// Idle databases cost nothing: work is driven by Notify signals and by the
// periodic scan; there is no goroutine or timer per database.
package copier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// Defaults for Options fields left zero.
const (
	DefaultWorkers      = 4
	DefaultInterval     = time.Second
	DefaultScanInterval = 30 * time.Second
	DefaultRateLimit    = 100
	DefaultMaxAttempts  = 6
)

// Options configures a Copier.
type Options struct {
	SpoolDir     string
	Targets      []blob.Store
	Workers      int           // concurrent uploads; default DefaultWorkers
	Interval     time.Duration // min time between manifest uploads of one db
	ScanInterval time.Duration // background scan period; <0 disables
	RateLimit    float64       // requests per second, process-wide
	RateBurst    int
	MaxAttempts  int // attempts per request before giving up until later
	Logger       *slog.Logger
}

// Copier uploads spooled databases.
type Copier struct {
	opts  Options
	log   *slog.Logger
	limit *limiter
	stats *Stats

	mu      sync.Mutex
	state   map[string]*dbState
	queue   chan string
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	known   map[string]struct{} // chunk keys known present in every target
}

type dbState struct {
	mu         sync.Mutex // held while uploading this db
	queued     bool
	lastUpload time.Time
	timer      *time.Timer // armed only while a coalesced upload waits
}

// New returns a Copier with defaults applied; Start launches its workers.
func New(opts Options) *Copier {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.ScanInterval == 0 {
		opts.ScanInterval = DefaultScanInterval
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.RateBurst <= 0 {
		opts.RateBurst = int(max(opts.RateLimit, 1))
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Copier{
		opts:  opts,
		log:   opts.Logger,
		limit: newLimiter(opts.RateLimit, opts.RateBurst),
		stats: newStats(),
		state: map[string]*dbState{},
		queue: make(chan string, 4096),
		known: map[string]struct{}{},
	}
}

// Start launches the workers and the background scan.
func (c *Copier) Start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	for range c.opts.Workers {
		c.wg.Add(1)
		go c.worker(ctx)
	}
	if c.opts.ScanInterval > 0 {
		c.wg.Add(1)
		go c.scanner(ctx)
	}
}

// Close stops the workers. Work still queued is left in the spool for the
// next process or `verneuilctl flush`; call UploadAll first to drain.
func (c *Copier) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for _, st := range c.state {
		if st.timer != nil {
			st.timer.Stop()
		}
	}
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close copier: %w", ctx.Err())
	}
}

func (c *Copier) dbState(key string) *dbState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state[key]
	if st == nil {
		st = &dbState{}
		c.state[key] = st
	}
	return st
}

// Notify schedules an upload of key. It never blocks: when the queue is
// full the background scan picks the work up later.
func (c *Copier) Notify(key string) {
	st := c.dbState(key)
	c.mu.Lock()
	if st.queued || c.closed {
		c.mu.Unlock()
		return
	}
	wait := c.opts.Interval - time.Since(st.lastUpload)
	st.queued = true
	if wait > 0 {
		// Coalesce: one upload per interval for a hot database.
		st.timer = time.AfterFunc(wait, func() { c.enqueue(key) })
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.enqueue(key)
}

func (c *Copier) enqueue(key string) {
	select {
	case c.queue <- key:
	default:
		c.stats.dropped.Add(1)
		st := c.dbState(key)
		c.mu.Lock()
		st.queued = false
		c.mu.Unlock()
	}
}

func (c *Copier) worker(ctx context.Context) {
	defer c.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case key := <-c.queue:
			st := c.dbState(key)
			c.mu.Lock()
			st.queued = false
			st.timer = nil
			c.mu.Unlock()
			if err := c.upload(ctx, key, false); err != nil && ctx.Err() == nil {
				c.log.Warn("upload failed; will retry", "db", key, "err", err)
				c.retryLater(ctx, key)
			}
		}
	}
}

// retryLater re-queues a failed database after a jittered delay.
func (c *Copier) retryLater(ctx context.Context, key string) {
	st := c.dbState(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.queued || c.closed {
		return
	}
	st.queued = true
	d := c.opts.Interval*5 + time.Duration(rand.Int64N(int64(c.opts.Interval*5)+1))
	st.timer = time.AfterFunc(d, func() {
		if ctx.Err() == nil {
			c.enqueue(key)
		}
	})
}

func (c *Copier) scanner(ctx context.Context) {
	defer c.wg.Done()
	for {
		d := c.opts.ScanInterval/2 + time.Duration(rand.Int64N(int64(c.opts.ScanInterval)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		keys, err := spool.List(c.opts.SpoolDir)
		if err != nil {
			c.log.Warn("scan spool", "err", err)
			continue
		}
		for _, key := range keys {
			if backlog, err := c.backlog(key); err == nil && backlog {
				c.Notify(key)
			}
		}
	}
}

// backlog reports whether a spool holds a manifest newer than the one
// uploaded.
func (c *Copier) backlog(key string) (bool, error) {
	d, err := spool.Existing(c.opts.SpoolDir, key)
	if err != nil {
		return false, err
	}
	m, _, err := d.Manifest()
	if err != nil || m == nil {
		return false, err
	}
	up, _, _ := d.Uploaded()
	return up == nil || up.Seq < m.Seq, nil
}

// Upload synchronously uploads the spool of key (chunks, then manifest).
func (c *Copier) Upload(ctx context.Context, key string) error {
	return c.upload(ctx, key, true)
}

// UploadAll synchronously uploads every spool under the spool directory.
func (c *Copier) UploadAll(ctx context.Context) error {
	keys, err := spool.List(c.opts.SpoolDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, key := range keys {
		if err := c.Upload(ctx, key); err != nil {
			errs = append(errs, fmt.Errorf("upload %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// Stats returns a snapshot of the copier's counters.
func (c *Copier) Stats() Snapshot { return c.stats.snapshot() }
