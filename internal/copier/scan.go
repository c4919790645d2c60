package copier

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// errSpoolGone marks the error of an upload whose spool no longer exists.
var errSpoolGone = errors.New("the spool was removed")

// idleSpool is what the copier keeps of a spool found uploaded when it has
// no record for it (no commit or upload lately): enough for the next scan
// to skip it with one stat(2), and for the statistics.
type idleSpool struct {
	stamp spool.Stamp // staged manifest known to be uploaded
	bytes int64       // spool usage
}

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
		_ = c.safely("spool scan", func() error { c.scan(ctx, false); return nil }) // logged and counted
		d := c.opts.ScanInterval
		timer.Reset(d*3/4 + rand.N(d/2+1))
	}
}

// Scan examines the spools marked dirty (spool.DirtyDir), then the next
// ScanBatch spools under the spool directory, going on where the previous
// scan stopped (a pass over N spools takes N/ScanBatch scans), so that a
// scan costs the same however many databases were ever spooled. For each
// spool it refreshes the gauges (pending version, spool bytes), schedules
// an upload of a staged version newer than the uploaded one and at least
// ScanMinAge old, and reclaims the spool of a database that is gone
// (ReclaimAfter). A spool whose staged manifest is unchanged since it was
// found uploaded costs one stat(2). Then it drops the records of databases
// idle for ForgetIdle. The background scan is the same except that it
// reads a batch only while a full pass is under way or due
// (FullScanInterval): between passes its work follows the databases that
// changed.
func (c *Copier) Scan(ctx context.Context) { c.scan(ctx, true) }

func (c *Copier) scan(ctx context.Context, full bool) {
	c.scanning.Lock()
	defer c.scanning.Unlock()
	c.stats.scans.Add(1)
	// One budget of ScanBatch spools per scan: the dirty ones first, the
	// full pass (when under way or due) gets the rest.
	examined, marksRead := c.scanDirty(ctx)
	budget := c.opts.ScanBatch - examined
	var keys []string
	var err error
	// Markers that cannot be read leave full passes as the only way to
	// find another process's work.
	due := full || !marksRead || c.scanDir != nil || c.opts.FullScanInterval < 0 || time.Since(c.passEnd) >= c.opts.FullScanInterval
	if due && budget > 0 {
		keys, err = c.nextScanBatch(budget)
	}
	if err != nil {
		c.stats.scanErrors.Add(1)
		c.log.Warn("scan spool", "spool_dir", c.opts.SpoolDir, "err", err)
		return
	}
	for _, key := range keys {
		if c.stopping(ctx) {
			return
		}
		c.scanOne(key)
	}
	c.forgetIdle(time.Now())
}

// stopping reports whether the scan should stop.
func (c *Copier) stopping(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	case <-c.stop:
		return true
	default:
		return false
	}
}

// scanDirty examines up to ScanBatch spools marked dirty, going on after
// the last one examined by the previous scan, removes the marker of those
// found uploaded (or gone). It returns how many it examined, and false
// when the markers could not be read. c.scanning is held.
func (c *Copier) scanDirty(ctx context.Context) (int, bool) {
	root := c.opts.SpoolDir
	keys, err := spool.DirtyKeys(root)
	if err != nil {
		c.stats.scanErrors.Add(1)
		c.log.Warn("scan spool: read dirty markers (falling back to full passes)", "spool_dir", root, "err", err)
		return 0, false
	}
	if len(keys) > c.opts.ScanBatch {
		slices.Sort(keys)
		i, _ := slices.BinarySearch(keys, c.dirtyNext)
		keys = slices.Concat(keys[i:], keys[:i])[:c.opts.ScanBatch]
		c.dirtyNext = keys[len(keys)-1] + "\x00"
	}
	for _, key := range keys {
		if c.stopping(ctx) {
			return len(keys), true
		}
		c.stats.scanDirty.Add(1)
		if _, err := os.Stat(spoolPath(root, key)); errors.Is(err, fs.ErrNotExist) {
			err = spool.ClearDirty(root, key, spool.Stamp{})
			if err != nil {
				c.log.Warn("scan spool", "key", key, "err", err)
			}
			continue
		}
		if stamp, clean := c.scanOne(key); clean {
			if err := spool.ClearDirty(root, key, stamp); err != nil {
				c.log.Warn("scan spool", "key", key, "err", err)
			}
		}
	}
	return len(keys), true
}

// nextScanBatch returns the next n (> 0) keys of the spool directory,
// starting a new pass (and sweeping interrupted reclaims) after the last.
// c.scanning is held.
func (c *Copier) nextScanBatch(n int) ([]string, error) {
	if c.scanDir == nil {
		root := c.opts.SpoolDir
		if err := config.CheckOwnedDir(root); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err := spool.SweepReclaimed(root); err != nil {
			c.log.Warn("scan spool", "spool_dir", root, "err", err)
		}
		f, err := os.Open(spool.DBsDir(root))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		c.scanDir = f
	}
	ents, err := c.scanDir.ReadDir(n)
	if err != nil || len(ents) < n {
		c.scanDir.Close()
		c.scanDir = nil
		c.passEnd = time.Now()
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	keys := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.IsDir() {
			keys = append(keys, e.Name())
		}
	}
	return keys, err
}

// closeScanDir ends the scan's pass (Close).
func (c *Copier) closeScanDir() {
	c.scanning.Lock()
	defer c.scanning.Unlock()
	if c.scanDir != nil {
		c.scanDir.Close()
		c.scanDir = nil
	}
}

// scanOne examines the spool of key. It returns the stamp of the staged
// manifest it read and whether that manifest was found uploaded.
func (c *Copier) scanOne(key string) (spool.Stamp, bool) {
	c.stats.scanned.Add(1)
	d := &spool.Dir{Path: spoolPath(c.opts.SpoolDir, key), Key: key}
	stamp, err := d.ManifestStamp()
	c.mu.Lock()
	st := c.dbs[key]
	clean, usageStale, needPath := c.idle[key].stamp, false, true
	if st != nil {
		clean, usageStale, needPath = st.clean, st.usageStale, st.path == ""
	}
	unchanged := err == nil && stamp == clean && stamp.Reliable() && !usageStale
	c.mu.Unlock()
	if err != nil {
		c.log.Debug("scan spool", "key", key, "err", err)
		return stamp, false
	}
	if unchanged {
		c.reclaim(key, stamp)
		return stamp, true
	}
	var pending, damaged bool
	var staged time.Time
	if !stamp.IsZero() {
		m, _, merr := d.Manifest()
		up, _, uerr := d.Uploaded()
		switch {
		case merr != nil:
			// The tracker rebuilds a damaged manifest at the next write.
			c.log.Debug("scan spool: damaged staged manifest", "key", key, "err", merr)
			damaged = true
		case m != nil:
			// A record for other targets proves nothing about these.
			pending = uerr != nil || spool.NeedsUpload(m, up) || !c.recordCovers(d)
			staged = m.CommitTime
			if !pending {
				c.tidyUploaded(d)
			}
		}
	}
	usage, _ := d.Usage()
	var path string
	if needPath && (pending || st != nil || c.opts.KeepRecords) { // a record is kept
		if info, err := d.Info(); err == nil {
			path = info.Path
		}
	}

	now := time.Now()
	c.mu.Lock()
	if st = c.dbs[key]; st == nil && !pending && !c.opts.KeepRecords {
		// Uploaded, and no record: remember only that.
		c.idle[key] = idleSpool{stamp: stamp, bytes: usage}
		c.mu.Unlock()
		c.reclaim(key, stamp)
		return stamp, !damaged
	}
	st = c.getLocked(key)
	if path != "" {
		st.path = path
	}
	st.spoolBytes = usage
	st.usageStale = false
	if pending || st.sched == idle {
		st.pending = pending // else an upload in progress settles it
	}
	if !pending {
		if st.sched == idle {
			st.clean = stamp
		}
		c.mu.Unlock()
		c.reclaim(key, stamp)
		return stamp, !damaged
	}
	defer c.mu.Unlock()
	st.stagedCommit = staged
	if c.closed || (c.opts.ScanMinAge > 0 && now.Sub(time.Unix(0, stamp.MTime)) < c.opts.ScanMinAge) {
		return stamp, false // fresh: its writer's own copier has it
	}
	c.requestLocked(st, now)
	return stamp, false
}

// reclaim removes the spool of key, found uploaded with stamp, when its
// database is gone (spool.Reclaim), and forgets it.
func (c *Copier) reclaim(key string, stamp spool.Stamp) {
	after := c.opts.ReclaimAfter
	if after < 0 || (!stamp.IsZero() && time.Since(time.Unix(0, stamp.MTime)) < after) {
		return
	}
	done, err := spool.Reclaim(c.opts.SpoolDir, key, after, c.recordCovers)
	if err != nil {
		c.log.Warn("reclaim spool", "key", key, "err", err)
	}
	if !done {
		return
	}
	c.log.Info("reclaimed the spool of a deleted database", "key", key)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.idle, key)
	if st := c.dbs[key]; st != nil && st.sched == idle && !st.pending && st.up.TryLock() {
		delete(c.dbs, key)
		st.up.Unlock()
	}
}

// forgetIdle drops the records of databases that had nothing to do for
// ForgetIdle, or whose spool is gone, keeping what the next scan needs in
// c.idle. A record in use (scheduled, pending, failing, or held by an
// upload) stays. A record made again later starts with empty statistics
// and no delta base (its next manifest is a full one).
func (c *Copier) forgetIdle(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, st := range c.dbs {
		if st.sched != idle || st.pending {
			continue
		}
		old := now.Sub(st.touched) >= c.opts.ForgetIdle && st.failures == 0 && !c.opts.KeepRecords
		if !old {
			if _, err := os.Stat(spoolPath(c.opts.SpoolDir, key)); !errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		if !st.up.TryLock() {
			continue
		}
		delete(c.dbs, key)
		if old && !st.clean.IsZero() {
			c.idle[key] = idleSpool{stamp: st.clean, bytes: st.spoolBytes}
		} else {
			delete(c.idle, key)
		}
		st.up.Unlock()
	}
}

// tidyUploaded removes what an uploader killed after it recorded its upload
// left in the spool d, found uploaded: its pin, and the staged chunks of
// the version uploaded (which nothing else removes before the next upload,
// if the database is ever written again). An upload in progress (the
// upload lock held) tidies after itself; the state is checked again under
// the lock.
func (c *Copier) tidyUploaded(d *spool.Dir) {
	staged, err := d.StagedChunks()
	if err != nil {
		return
	}
	if _, perr := os.Lstat(filepath.Join(d.Path, spool.PinFile)); len(staged) == 0 && perr != nil {
		return
	}
	unlock, err := d.UploadLock(false)
	if err != nil || unlock == nil {
		return
	}
	defer unlock()
	m, _, err := d.Manifest()
	if err != nil || m == nil {
		return
	}
	up, _, err := d.Uploaded()
	if err != nil || spool.NeedsUpload(m, up) || !c.recordCovers(d) {
		return
	}
	if _, err := d.ClearStalePin(); err != nil {
		c.log.Warn("remove the pin of an interrupted upload", "key", d.Key, "err", err)
	}
	c.removeUploadedChunks(d, up) // m's state, with the chunks it carries inline (they stay)
}
