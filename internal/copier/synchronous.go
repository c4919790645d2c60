package copier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// Synchronous uploads (flushes, verneuilctl sync and flush, the
// replicator's close): Upload and UploadAll, outside the background
// scheduler.

// UploadAll synchronously uploads every spool under the spool directory,
// Workers at a time, skipping spools known to be uploaded.
func (c *Copier) UploadAll(ctx context.Context) error {
	keys, err := spool.List(c.opts.SpoolDir)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, c.opts.Workers)
	)
	for _, key := range keys {
		if c.knownClean(key) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, fmt.Errorf("upload spools: %w", ctx.Err()))...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := c.safely("upload "+key, func() error { return c.Upload(ctx, key) })
			if err != nil && !errors.Is(err, errSpoolGone) { // reclaimed since the listing
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// knownClean reports whether the staged manifest of key is one this copier
// already uploaded (or found uploaded).
func (c *Copier) knownClean(key string) bool {
	c.mu.Lock()
	clean := c.idle[key].stamp
	pending := false
	if st := c.dbs[key]; st != nil {
		clean = st.clean
		pending = st.hist.pending != 0 // a flush writes its history
	}
	c.mu.Unlock()
	if clean.IsZero() || pending {
		return false
	}
	d := &spool.Dir{Path: spoolPath(c.opts.SpoolDir, key), Key: key}
	stamp, err := d.ManifestStamp()
	// An unreliable (coarse) stamp can repeat for a new version: the
	// upload then compares contents.
	return err == nil && stamp == clean && stamp.Reliable()
}

// Upload synchronously uploads the spool of key (chunks, then manifest),
// waiting for an upload of it in progress elsewhere to finish first. It
// ignores coalescing, backoff and pauses, but not the rate limit.
func (c *Copier) Upload(ctx context.Context, key string) error {
	c.mu.Lock()
	st := c.getLocked(key)
	since := st.pendingSince
	c.mu.Unlock()
	g := c.newFlushGoal(st)
	res, err := c.uploadDB(ctx, st, since, true, g)
	if err == nil && res.reached {
		// Another process's upload reached the goal: it may have
		// published it as latest only (history.go).
		err = c.flushHistory(ctx, st)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if res.gone {
		// Removed (by a reclaim, spool.Reclaim, after its last upload):
		// not retried; UploadAll skips it.
		st.pending = false
		return fmt.Errorf("upload %s: %w: %w", c.describeLocked(st), errSpoolGone, err)
	}
	if err != nil {
		if st.sched == idle && c.started && !c.closed && ctx.Err() == nil {
			// Make sure the background retries what the caller could
			// not upload.
			st.backoff++
			now := time.Now()
			c.scheduleLocked(st, now.Add(c.backoff(st.backoff)), now)
		}
		return fmt.Errorf("upload %s: %w", c.describeLocked(st), withProgress(err, st, g))
	}
	if res.storeOK {
		c.breakerOKLocked(time.Now())
	}
	if st.sched != running {
		st.pendingSince = time.Time{}
	}
	st.backoff = 0
	return nil
}

// withProgress adds to an upload cut short by its context (a flush
// timeout) what it waited for, how far the upload in progress got and what
// becomes of the rest.
func withProgress(err error, st *dbState, g *flushGoal) error {
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	var parts []string
	if g != nil {
		_, up := g.uploaded()
		parts = append(parts, fmt.Sprintf("waiting for version %d (staged at the start) or a later one; the last uploaded is %d", g.seq, up))
	}
	if todo := st.chunksTodo.Load(); todo > 0 {
		parts = append(parts, fmt.Sprintf("stopped with %d of %d changed chunks uploaded; the rest stays in the spool for the copier or the next flush, which skip what is already uploaded",
			st.chunksDone.Load(), todo))
	}
	if len(parts) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(parts, "; "))
}
