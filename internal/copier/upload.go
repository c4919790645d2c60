package copier

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// ErrChunkLost means a manifest references a chunk that is neither staged
// nor in the store; the spool is marked for a rescan of the database.
var ErrChunkLost = errors.New("chunk missing from spool and store")

// storeError marks an error returned by the blob store (after retries), as
// opposed to local errors (spool, lost chunks).
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// result describes how an upload attempt went, besides its error.
type result struct {
	busy     bool // another uploader holds the database; nothing was done
	gone     bool // the spool no longer exists
	storeErr bool // the error came from the blob store
	storeOK  bool // at least one store request succeeded
	reached  bool // waiting, another uploader uploaded the state wanted
	// published: a version was made latest. A run without one (the
	// deferred history object of a published version, or nothing left
	// to do) does not count against the database's pacing (copier.go).
	published bool
}

// flushGoal is what a synchronous upload (a flush) waits for: a state at
// least as new as the one staged at its start, recorded uploaded to every
// target by any uploader. A flush that waits for another upload in
// progress ends once that upload reaches the goal, rather than starting
// one more of a newer state, which commits may keep moving.
type flushGoal struct {
	d   *spool.Dir
	seq uint64 // the staged version at the flush's start
	set *manifest.Manifest
	// historyPending reports a version published as latest only, which
	// the flush must still write to history (history.go).
	historyPending func() bool
}

// newFlushGoal returns the goal of a flush of st starting now, nil when
// nothing is staged.
func (c *Copier) newFlushGoal(st *dbState) *flushGoal {
	d := &spool.Dir{Path: spoolPath(c.opts.SpoolDir, st.key), Key: st.key}
	m, _, err := d.Manifest()
	if err != nil || m == nil {
		return nil
	}
	c.declareTargets()
	return &flushGoal{d: d, seq: m.Seq, set: m, historyPending: func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return st.hist.pending != 0
	}}
}

// uploaded returns the version recorded uploaded (0: none).
func (g *flushGoal) uploaded() (*manifest.Manifest, uint64) {
	up, _, err := g.d.Uploaded()
	if err != nil || up == nil {
		return nil, 0
	}
	return up, up.Seq
}

// reached reports whether the goal is uploaded. The staged manifest only
// moves forward and the record copies one of its states (renumbered above
// the previous record when a clock was behind), so a record numbered above
// the goal is a later state.
func (g *flushGoal) reached() bool {
	if g == nil {
		return false
	}
	up, seq := g.uploaded()
	return up != nil && (seq > g.seq || spool.SameState(up, g.set)) && !g.historyPending()
}

// attempt is shared by the requests of one upload attempt, which may run
// concurrently (chunks).
type attempt struct {
	st      *dbState
	storeOK atomic.Bool // a store request succeeded
	sync    bool        // a synchronous upload (flush): history too
	placed  placements  // chunks found or sent in packs (pack.go)
	// repacked: the manifest being published moved records to new
	// packs, so it is published full (repack.go)
	repacked bool

	latestMu   sync.Mutex // guards the two below (pack.go)
	latestRead bool
	latestLocs map[manifest.Hash]manifest.Location
}

// lockDB takes the in-process upload mutex of st, polling until ctx is
// done when wait is set; without wait it reports false when it is held.
// While it waits, it also gives up (false, nil) once another upload
// reaches g (if not nil).
func lockDB(ctx context.Context, st *dbState, wait bool, g *flushGoal) (bool, error) {
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		if st.up.TryLock() {
			return true, nil
		}
		if !wait || g.reached() {
			return false, nil
		}
		if err := sleep(ctx, delay); err != nil {
			return false, fmt.Errorf("wait for the upload in progress: %w", err)
		}
	}
}

// lockSpool takes the spool's cross-process upload lock, polling until ctx
// is done when wait is set; without wait it returns nil when another
// process holds it. While it waits, it also returns nil once another
// upload reaches g (if not nil).
func lockSpool(ctx context.Context, d *spool.Dir, wait bool, g *flushGoal) (func(), error) {
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 250*time.Millisecond) {
		unlock, err := d.UploadLock(false)
		if err != nil || unlock != nil || !wait || g.reached() {
			return unlock, err
		}
		if err := sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("wait for another process uploading this database: %w", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// uploadDB uploads the newest staged manifest of st and the chunks it
// needs to every target, under the database's in-process mutex and the
// spool's upload lock (waiting for them when wait is set, until another
// upload reaches g if it is not nil). It records the
// outcome in the stats and in the spool's last_error file. since is the
// first signal not yet uploaded (lag accounting).
func (c *Copier) uploadDB(ctx context.Context, st *dbState, since time.Time, wait bool, g *flushGoal) (res result, err error) {
	ok, err := lockDB(ctx, st, wait, g)
	if err != nil || !ok {
		res.busy = !ok && err == nil && !wait
		res.reached = !ok && err == nil && wait
		return res, err
	}
	defer st.up.Unlock()
	d, err := spool.Existing(c.opts.SpoolDir, st.key)
	if err != nil {
		res.gone = errors.Is(err, fs.ErrNotExist)
		return res, err
	}
	c.mu.Lock()
	needPath := st.path == ""
	c.mu.Unlock()
	if needPath {
		if info, err := d.Info(); err == nil && info.Path != "" {
			c.mu.Lock()
			st.path = info.Path
			c.mu.Unlock()
		}
	}
	unlock, err := lockSpool(ctx, d, wait, g)
	if err != nil {
		res.gone = errors.Is(err, fs.ErrNotExist) // reclaimed meanwhile
		return res, err
	}
	if unlock == nil {
		res.busy, res.reached = !wait, wait
		return res, nil
	}
	defer unlock()

	// Stat before reading: if the manifest changes meanwhile, the stamp
	// recorded as clean is the older one, which only costs a re-check.
	stamp, _ := d.ManifestStamp()
	c.stats.uploads.Add(1)
	var published *manifest.Manifest
	var encLen int
	at := &attempt{st: st, sync: wait}
	defer func() { res.storeOK = at.storeOK.Load() }() // res is a named result
	for n := 1; ; n++ {
		err = c.safely("upload "+st.key, func() (err error) {
			published, encLen, err = c.uploadOnce(ctx, d, at)
			return err
		})
		if !errors.Is(err, errRestart) {
			break
		}
		if !wait && n >= uploadRestartsPerCycle {
			// The database changes faster than it uploads: not a
			// failure; the background retries after the interval.
			res.busy = true
			return res, nil
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("the staged manifest keeps changing: %w", ctx.Err())
			break
		}
	}
	now := time.Now()
	if err != nil {
		var se *storeError
		res.storeErr = errors.As(err, &se)
		c.stats.uploadErrors.Add(1)
		var next time.Time
		c.mu.Lock()
		if res.storeErr && ctx.Err() == nil {
			c.breakerFailLocked(now, err)
		}
		switch {
		case !wait && res.storeErr && c.breaker.paused:
			// The store is down: the probes pace the retries, and this
			// database goes again as soon as the store answers.
			next = c.breaker.pauseUntil
			st.retryAt = next
		case !wait:
			// Plan the retry now, so that the record says when.
			st.backoff++
			next = now.Add(c.backoff(st.backoff))
			st.retryAt = next
		case st.sched == waiting:
			next = st.due
		}
		c.mu.Unlock()
		c.recordFailure(ctx, d, st, err, next, now)
		return res, err
	}
	after, _ := d.ManifestStamp()
	unchanged := after == stamp && (stamp.Reliable() || stagedUploaded(d))
	if unchanged {
		// Nothing is left for a scan to find (spool.ClearDirty).
		if err := spool.ClearDirty(c.opts.SpoolDir, st.key, stamp); err != nil {
			c.log.Warn("upload", "key", st.key, "err", err)
		}
	}
	c.mu.Lock()
	st.uploads++
	st.clean = stamp
	st.usageStale = true
	if unchanged {
		st.pending = false
	}
	if published != nil {
		res.published = true
		// The manifest's commit time is that of its newest commit; when
		// commits were coalesced, the first signal for them is older.
		lag := now.Sub(earliest(since, published.CommitTime))
		st.manifests++
		st.lastSeq = published.Seq
		st.lastCommit = published.CommitTime
		st.lastVisible = now
		st.lastLag = max(lag.Seconds(), 0)
		st.lastSignal = since
		if st.lag == nil {
			st.lag = &histogram{}
		}
		st.lag.observe(st.lastLag)
		c.stats.manifests.Add(1)
		c.stats.manifestBytes.Add(int64(encLen))
		c.stats.observeLag(lag)
	}
	failed := st.failures
	since0 := st.failedSince
	st.failures = 0
	st.failedSince = time.Time{}
	st.lastErr = ""
	st.lastErrAt = time.Time{}
	st.loggedErr = ""
	path := c.describeLocked(st)
	c.mu.Unlock()
	// Another process may have recorded a failure: always clear (a
	// missing record costs one failed unlink).
	if err := d.ClearLastError(); err != nil {
		c.log.Warn("clear upload error record", "db", path, "err", err)
	}
	if failed > 0 {
		c.log.Info("upload succeeded after failures", "db", path, "failures", failed,
			"failing_for", now.Sub(since0).Round(time.Millisecond))
	}
	return res, nil
}

// recordFailure notes a failed upload in the stats, the spool's last_error
// file and the log (the first failure, a changed error, then every few
// minutes).
func (c *Copier) recordFailure(ctx context.Context, d *spool.Dir, st *dbState, err error, next, now time.Time) {
	if ctx.Err() != nil {
		// Shutting down, or the caller's deadline (a flush) expired:
		// the caller has the error; background attempts record theirs.
		return
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	permanent := errors.Is(err, blob.ErrPermanent)
	c.mu.Lock()
	st.errs++
	st.failures++
	if st.failedSince.IsZero() {
		st.failedSince = now
	}
	st.lastErr = msg
	st.lastErrAt = now
	rec := spool.LastError{Message: msg, Time: now, Since: st.failedSince, Failures: st.failures,
		Permanent: permanent, NextAttempt: next, PID: os.Getpid()}
	logIt := st.failures == 1 || msg != st.loggedErr || now.Sub(st.lastLogged) >= logRepeatFailureEvery
	if logIt {
		st.loggedErr = msg
		st.lastLogged = now
	}
	path := c.describeLocked(st)
	failures := st.failures
	c.mu.Unlock()
	if werr := d.WriteLastError(rec); werr != nil {
		c.log.Warn("record upload error in spool", "db", path, "err", werr)
	}
	if !logIt {
		c.log.Debug("upload failed again", "db", path, "failures", failures, "err", msg)
		return
	}
	level := slog.LevelWarn
	if permanent {
		level = slog.LevelError
	}
	attrs := []any{"db", path, "key", st.key, "failures", failures, "permanent", permanent, "err", msg}
	if !next.IsZero() {
		attrs = append(attrs, "retry_in", next.Sub(now).Round(time.Millisecond))
	}
	c.log.Log(context.Background(), level, "upload failed", attrs...)
}

var errRestart = errors.New("staged manifest changed during upload")

// uploadOnce uploads the staged manifest of d if it is newer than the
// uploaded one: chunks first, then the immutable manifest, then "latest".
// It returns the manifest published (nil when there was nothing to do).
func (c *Copier) uploadOnce(ctx context.Context, d *spool.Dir, at *attempt) (*manifest.Manifest, int, error) {
	began := time.Now()
	m, _, err := d.Manifest()
	if err != nil {
		return nil, 0, stagedManifestError(err)
	}
	if m == nil {
		return nil, 0, nil
	}
	// Uploaded returns no record made for other targets than the ones
	// declared here (the configuration changed): its chunks prove nothing
	// about these, which get a complete version.
	c.declareTargets()
	up, upEnc, err := d.Uploaded()
	if err != nil {
		c.log.Warn("ignoring damaged upload record", "db", d.Key, "err", err)
		up, upEnc = nil, nil
	}
	if !spool.NeedsUpload(m, up) {
		return nil, 0, c.settleHistory(ctx, d, at, up, upEnc)
	}
	// Pin the newest staged manifest: commits published while it uploads
	// keep its staged chunks, so that the upload ends (a flush returns
	// once this state, at least as new as the one at its start, is in
	// every target) however fast they come.
	m, enc, unpin, err := d.Pin()
	if err != nil {
		return nil, 0, stagedManifestError(err)
	}
	defer unpin()
	if m == nil || !spool.NeedsUpload(m, up) {
		return nil, 0, nil
	}
	if up != nil && up.Seq >= m.Seq {
		// A later state numbered at or below the last upload: the clock
		// went back, or the uploader renumbered the last upload.
		if m, enc, err = c.renumber(d.Key, m, up.Seq+1, up, "the last uploaded version"); err != nil {
			return nil, 0, err
		}
	}
	// Chunks that changed since the last upload (most did not).
	var todo []manifest.Hash
	var seen map[manifest.Hash]bool
	for i, h := range m.Chunks {
		if i == 0 {
			continue // inline in the manifest
		}
		if up != nil && i < len(up.Chunks) && up.Chunks[i] == h && up.Inline[h] == nil {
			continue // unchanged: in the store already (not inline only)
		}
		if h == manifest.ZeroChunkHash(manifest.ChunkLen(i, m.Length, m.ChunkSize)) {
			continue // zero chunks are never stored
		}
		if seen == nil {
			seen = map[manifest.Hash]bool{}
		}
		if !seen[h] {
			seen[h] = true
			todo = append(todo, h)
		}
	}
	changed := len(todo) > 0
	inline, todo, err := c.chooseInline(ctx, d, at, m, up, todo)
	if err != nil {
		return nil, 0, err
	}
	var locs map[manifest.Hash]manifest.Location
	if len(todo) > 0 {
		inUploaded := map[manifest.Hash]bool{}
		if up != nil {
			for _, u := range up.Chunks {
				inUploaded[u] = up.Inline[u] == nil // inline only: not stored
			}
		}
		at.st.chunksTodo.Store(int64(len(todo)))
		at.st.chunksDone.Store(0)
		if locs, err = c.uploadChunks(ctx, d, at, m, up, todo, inUploaded); err != nil {
			return nil, 0, err
		}
	}
	if m, enc, err = withLocations(m, enc, up, locs); err != nil {
		return nil, 0, err
	}
	if m, enc, err = c.repack(ctx, at, m, enc, began); err != nil {
		return nil, 0, err
	}
	if m, enc, err = withInline(m, enc, inline); err != nil {
		return nil, 0, err
	}
	failpoint.Hit("upload-before-manifest")
	// Everything the manifest references is in every target: publish it,
	// unless the chunks it relies on might have aged past a collection's
	// grace period meanwhile (docs/FORMAT.md, "Garbage collection"): then
	// start again, which re-validates them.
	if time.Since(began) > c.opts.GCGrace/4 {
		c.log.Warn("upload outlasted its publish deadline; starting again", "db", d.Key, "deadline", c.opts.GCGrace/4)
		return nil, 0, errRestart
	}
	var wireLen int
	if m, enc, wireLen, err = c.publishManifest(ctx, d, at, m, enc); err != nil {
		return nil, 0, err
	}
	failpoint.Hit("upload-before-record")
	if err := d.MarkUploadedTo(enc, c.targetIDs()); err != nil {
		return nil, 0, fmt.Errorf("record upload: %w", err)
	}
	if changed {
		c.removeUploadedChunks(d, m)
	}
	return m, wireLen, nil
}

// stagedManifestError wraps an error reading the staged manifest.
func stagedManifestError(err error) error {
	if errors.Is(err, manifest.ErrCorrupt) {
		// Lost in a power cut, say. Only the database can tell what it
		// held: the next commit rescans it, or `verneuilctl sync`.
		return fmt.Errorf("staged manifest damaged; the next commit or `verneuilctl sync` rebuilds it from the database: %w", err)
	}
	return fmt.Errorf("read staged manifest: %w", err)
}

// removeUploadedChunks deletes staged chunks that m references: every one
// of them is now in every target, but those m carries inline (inline.go),
// which stay for the next version to carry or store. Chunks staged for a
// newer manifest that m does not reference stay.
func (c *Copier) removeUploadedChunks(d *spool.Dir, m *manifest.Manifest) {
	staged, err := d.StagedChunks()
	if err != nil || len(staged) == 0 {
		return
	}
	set := make(map[manifest.Hash]bool, len(staged))
	for _, s := range staged {
		if h, err := manifest.ParseHash(s); err == nil {
			set[h] = true
		}
	}
	for _, h := range m.Chunks {
		if set[h] && !keepInlineStaged(m, h) {
			_ = d.RemoveChunk(h)
			delete(set, h)
		}
	}
}

// parallel runs fn on every chunk, ChunkParallelism at a time, and returns
// the first error (cancelling the rest).
func (c *Copier) parallel(ctx context.Context, hs []manifest.Hash, fn func(context.Context, manifest.Hash) error) error {
	return runParallel(c, ctx, hs, c.opts.ChunkParallelism, func(h manifest.Hash) string { return "upload chunk " + h.String() }, fn)
}

// runParallel runs fn on every item, n at a time, and returns the first
// error (cancelling the rest); what names an item in a recovered panic.
func runParallel[T any](c *Copier, ctx context.Context, items []T, n int, what func(T) string, fn func(context.Context, T) error) error {
	if len(items) == 1 || n == 1 {
		for _, it := range items {
			if err := fn(ctx, it); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, n)
	)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.safely(what(it), func() error { return fn(ctx, it) }); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// superseded reports whether the staged manifest is no longer m.
func superseded(d *spool.Dir, m *manifest.Manifest) bool {
	cur, _, err := d.Manifest()
	return err == nil && cur != nil && !spool.SameState(cur, m)
}

// uploadChunk sends staged chunk h as its own object, or checks that an
// unstaged one is in every target. Chunks known to be in a pack are
// classified before (uploadChunks).
func (c *Copier) uploadChunk(ctx context.Context, d *spool.Dir, at *attempt, m *manifest.Manifest, h manifest.Hash, wasUploaded bool) error {
	st := at.st
	key := names.ChunkKey(h.String())
	if d.HasChunk(h) {
		if loc, ok := c.known.has(h); ok {
			if loc != nil {
				// Packed meanwhile (another upload): stays staged
				// until the manifest naming the pack is published.
				at.placed.set(h, *loc)
				return nil
			}
			return d.RemoveChunk(h)
		}
		data, err := c.readStaged(d, m, h)
		if err != nil {
			return err
		}
		obj := manifest.EncodeChunk(data)
		for _, t := range c.opts.Targets {
			if err := c.do(ctx, at, func(ctx context.Context) error { return t.Put(ctx, key, obj) }); err != nil {
				return fmt.Errorf("upload chunk %s to %s: %w", h, t, err)
			}
		}
		failpoint.Hit("upload-mid-chunks")
		c.known.add(h, nil)
		c.stats.chunks.Add(1)
		c.stats.chunkBytes.Add(int64(len(obj)))
		c.mu.Lock()
		st.chunks++
		st.chunkBytes += int64(len(obj))
		c.mu.Unlock()
		return d.RemoveChunk(h)
	}
	if wasUploaded {
		return nil // in the last upload: its location comes from the record
	}
	if loc, ok := c.known.has(h); ok {
		if loc != nil {
			at.placed.set(h, *loc)
		}
		return nil
	}
	// Not staged and not known: it must already be in every target. Where
	// the store can, the check also resets the chunk's modification time,
	// so that no collection deletes it before the manifest is published
	// (it may be an old chunk no retained manifest references).
	for _, t := range c.opts.Targets {
		var ok bool
		err := c.do(ctx, at, func(ctx context.Context) (err error) { ok, err = present(ctx, t, key); return err })
		if err != nil {
			return fmt.Errorf("check chunk %s in %s: %w", h, t, err)
		}
		if !ok {
			if superseded(d, m) {
				// A newer manifest was published meanwhile and its GC
				// removed a staged chunk that only m referenced.
				return errRestart
			}
			if found, err := c.packedInLatest(ctx, d.Key, at, h); err != nil || found {
				return err
			}
			c.markRescan(d, "chunk "+h.String()+" missing")
			return fmt.Errorf("%w: %s in %s; the database will be rescanned at its next write", ErrChunkLost, h, t)
		}
	}
	c.known.add(h, nil)
	return nil
}

// readStaged reads staged chunk h of m. A damaged chunk marks the spool
// for a rescan; a chunk removed by a newer manifest restarts the upload.
func (c *Copier) readStaged(d *spool.Dir, m *manifest.Manifest, h manifest.Hash) ([]byte, error) {
	data, err := d.ReadChunk(h)
	if err == nil {
		return data, nil
	}
	if errors.Is(err, manifest.ErrCorrupt) {
		c.markRescan(d, err.Error())
		return nil, fmt.Errorf("%w: %v; the database will be rescanned at its next write", ErrChunkLost, err)
	}
	if superseded(d, m) {
		return nil, errRestart // deleted by a newer manifest's GC
	}
	return nil, fmt.Errorf("read staged chunk: %w", err)
}

// present reports whether key exists in t, touching it where t can.
func present(ctx context.Context, t blob.Store, key string) (bool, error) {
	tt, ok := t.(blob.Toucher)
	if !ok {
		return t.Exists(ctx, key)
	}
	err := tt.Touch(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// do runs one blob-store request under the rate limit and the request
// timeout, retrying transient errors with capped exponential backoff and
// full jitter. Not-found and precondition answers are returned as they
// are; other failures are wrapped in *storeError.
func (c *Copier) do(ctx context.Context, at *attempt, op func(context.Context) error) error {
	st := at.st
	for attempt := 1; ; attempt++ {
		if err := waitLimit(ctx, c.limit); err != nil {
			return err
		}
		c.stats.requests.Add(1)
		st.requests.Add(1)
		rctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
		err := op(rctx)
		cancel()
		if err == nil || errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrPrecondition) {
			at.storeOK.Store(true)
			return err
		}
		c.stats.requestErrors.Add(1)
		if ctx.Err() != nil {
			return fmt.Errorf("%w (aborted: %v)", err, ctx.Err())
		}
		if errors.Is(err, blob.ErrPermanent) {
			return &storeError{err}
		}
		if attempt >= c.opts.MaxAttempts {
			return &storeError{fmt.Errorf("%w (gave up after %d attempts)", err, attempt)}
		}
		c.stats.retries.Add(1)
		st.retries.Add(1)
		backoff := min(requestBackoffMin<<(attempt-1), requestBackoffMax)
		if serr := sleep(ctx, rand.N(backoff)+1); serr != nil {
			return fmt.Errorf("%w (aborted: %v)", err, serr)
		}
	}
}

// markRescan asks for a rescan of the database whose spool is d.
func (c *Copier) markRescan(d *spool.Dir, reason string) {
	if err := d.MarkRescan(reason); err != nil {
		c.log.Error("mark spool for rescan", "db", d.Key, "err", err)
	}
	if c.opts.OnRescan != nil {
		c.opts.OnRescan(d.Key)
	}
}
