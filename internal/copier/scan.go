package copier

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// scanner runs the background scan: once at start, then every
// ScanInterval (±25%).
func (c *Copier) scanner(ctx context.Context) {
	defer c.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		_ = c.safely("spool scan", func() error { c.Scan(ctx); return nil }) // logged and counted
		d := c.opts.ScanInterval
		timer.Reset(d*3/4 + rand.N(d/2+1))
	}
}

// Scan checks every spool under the spool directory once: it refreshes the
// per-database gauges (pending version, spool bytes) and schedules an
// upload of every spool with a staged version newer than the uploaded one
// and at least ScanMinAge old. A spool whose staged manifest is unchanged
// since it was found uploaded costs one stat(2).
func (c *Copier) Scan(ctx context.Context) {
	c.scanning.Lock()
	defer c.scanning.Unlock()
	c.stats.scans.Add(1)
	keys, err := spool.List(c.opts.SpoolDir)
	if err != nil {
		c.stats.scanErrors.Add(1)
		c.log.Warn("scan spool", "spool_dir", c.opts.SpoolDir, "err", err)
		return
	}
	c.mu.Lock()
	c.scanGen++
	gen := c.scanGen
	c.mu.Unlock()
	for _, key := range keys {
		select {
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		default:
		}
		c.scanOne(key, gen)
	}
	// Forget databases whose spool is gone.
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, st := range c.dbs {
		if st.seen != gen && st.sched == idle && !st.pending {
			if _, err := spool.Existing(c.opts.SpoolDir, key); err != nil {
				delete(c.dbs, key)
			}
		}
	}
}

func (c *Copier) scanOne(key string, gen uint64) {
	d := &spool.Dir{Path: spoolPath(c.opts.SpoolDir, key), Key: key}
	stamp, err := d.ManifestStamp()
	c.mu.Lock()
	st := c.getLocked(key)
	st.seen = gen
	unchanged := err == nil && stamp == st.clean && stamp.Reliable() && !st.usageStale
	needPath := st.path == ""
	c.mu.Unlock()
	if err != nil {
		c.log.Debug("scan spool", "key", key, "err", err)
		return
	}
	if unchanged {
		return
	}
	var path string
	if needPath {
		if info, err := d.Info(); err == nil {
			path = info.Path
		}
	}
	var pending bool
	var staged time.Time
	if !stamp.IsZero() {
		m, _, merr := d.Manifest()
		up, _, uerr := d.Uploaded()
		switch {
		case merr != nil:
			// The tracker rebuilds a damaged manifest at the next write.
			c.log.Debug("scan spool: damaged staged manifest", "key", key, "err", merr)
		case m != nil:
			// A record for other targets proves nothing about these.
			pending = uerr != nil || spool.NeedsUpload(m, up) || !c.recordCovers(d)
			staged = m.CommitTime
		}
	}
	usage, _ := d.Usage()

	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if path != "" {
		st.path = path
	}
	st.spoolBytes = usage
	st.usageStale = false
	if pending || st.sched == idle {
		st.pending = pending // else an upload in progress settles it
	}
	if pending {
		st.stagedCommit = staged
	}
	if !pending {
		if st.sched == idle {
			st.clean = stamp
		}
		return
	}
	if c.closed || (c.opts.ScanMinAge > 0 && now.Sub(time.Unix(0, stamp.MTime)) < c.opts.ScanMinAge) {
		return // fresh: its writer's own copier has it
	}
	c.requestLocked(st, now)
}
