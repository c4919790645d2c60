package copier

import (
	"container/heap"
	"context"
	"fmt"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// History objects. Every version is published as the database's latest,
// but only some also get the immutable history object manifests/SEQ
// (docs/FORMAT.md, "History objects"): a version published at least
// Options.HistoryInterval after this process last wrote a history object
// of the database (or its first upload in this process), a version that
// starts a new delta base, and every version a synchronous upload (a
// flush) publishes. The others are "latest only": readers find them as
// latest while they are the newest. When the newest version is latest
// only and no newer one comes within the interval, the background
// scheduler brings the database back (the dispatcher's one timer: no
// goroutine or timer of its own) and settleHistory writes its history
// object from the upload record. A latest-only version that a newer one
// replaces is simply gone, which costs a point-in-time restore at most
// one interval of resolution.

// history is what this process wrote to a database's history.
type history struct {
	at      time.Time // when this process last wrote a history object of it; zero: never
	written uint64    // the newest version this process wrote to every target's history
	pending uint64    // published as latest only, history object not written yet (0: none)
	waiting bool      // the database waits in the scheduler for that history object only
}

// wantHistory reports whether the version about to be published also
// gets its history object.
func (c *Copier) wantHistory(at *attempt, now time.Time) bool {
	if c.opts.HistoryInterval <= 0 || at.sync {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := at.st.hist
	return h.at.IsZero() || now.Sub(h.at) >= c.opts.HistoryInterval
}

// recordHistory notes that version seq was published, with its history
// object or as latest only.
func (c *Copier) recordHistory(st *dbState, seq uint64, written bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if written {
		// waiting stays: a flush may run while the database waits in the
		// scheduler for a history object, which a signal must end.
		st.hist = history{at: now, written: seq, waiting: st.hist.waiting}
		return
	}
	st.hist.pending = seq
}

// historyDueLocked returns when the background writes the history object
// of the latest-only version of st, if there is one.
func (c *Copier) historyDueLocked(st *dbState) (time.Time, bool) {
	if st.hist.pending == 0 {
		return time.Time{}, false
	}
	st.hist.waiting = true
	return st.hist.at.Add(c.opts.HistoryInterval), true
}

// historyWaitEndedLocked is called when st is signalled while it waits:
// a database waiting only for a deferred history object is scheduled as
// a new version asks (the history object then comes with a later
// version), not left waiting for the history's due time.
func (c *Copier) historyWaitEndedLocked(st *dbState, now time.Time) {
	if !st.hist.waiting || st.sched != waiting || st.index < 0 {
		return
	}
	st.hist.waiting = false
	heap.Remove(&c.delay, st.index)
	st.sched = idle
	c.scheduleLocked(st, c.nextSlot(st), now)
}

// startsBase reports whether a version whose latest encodings per target
// are latests would publish a full latest while delta manifests are on:
// it then gets its history object and becomes the targets' base, rather
// than end their chains until the next history object (every later
// version full).
func (c *Copier) startsBase(latests [][]byte, enc []byte) bool {
	if c.opts.FullEvery <= 1 {
		return false
	}
	for _, l := range latests {
		if len(l) == len(enc) && &l[0] == &enc[0] {
			return true
		}
	}
	return false
}

// publishedLatestOnly records m published as latest only: a delta adds to
// its target's chain; a full latest ends the chain (a collection that
// reads it no longer keeps the base, so no later delta may rely on it)
// until the next history object starts one. It returns the bytes put to
// the first target, for the statistics.
func (c *Copier) publishedLatestOnly(st *dbState, m *manifest.Manifest, enc []byte, latests [][]byte) int {
	if len(st.bases) != len(latests) {
		st.bases = make([]deltaBase, len(latests))
	}
	for ti, l := range latests {
		if len(l) == len(enc) && &l[0] == &enc[0] {
			st.bases[ti] = deltaBase{}
		} else {
			st.bases[ti].deltas++
			st.bases[ti].bytes += len(l)
		}
		st.bases[ti].last = m.Seq
	}
	if len(latests) == 0 {
		return len(enc)
	}
	return len(latests[0])
}

// settleHistory runs when the staged manifest is already uploaded (up,
// encoded as upEnc, is the upload record): it writes the history object
// of up when it was published as latest only and its interval is over
// (or a flush asks), and a flush of a record this process did not
// publish makes sure its history object exists.
func (c *Copier) settleHistory(ctx context.Context, d *spool.Dir, at *attempt, up *manifest.Manifest, upEnc []byte) error {
	if up == nil || len(upEnc) == 0 {
		return nil
	}
	st := at.st
	now := time.Now()
	c.mu.Lock()
	h := st.hist
	if h.pending != 0 && h.pending != up.Seq {
		// Another process published over our latest-only version: its
		// own copier writes the history of what it published.
		st.hist.pending, h.pending = 0, 0
	}
	c.mu.Unlock()
	switch {
	case h.pending != 0 && (at.sync || now.Sub(h.at) >= c.opts.HistoryInterval):
	case at.sync && h.written != up.Seq && h.pending == 0 && c.opts.HistoryInterval > 0:
		// A flush in another process than the one that published up
		// (verneuilctl flush): it may have been latest only. (Processes
		// configured to write every version to history skip the check:
		// they share the configuration of those that upload.)
		missing := false
		for _, t := range c.opts.Targets {
			var ok bool
			err := c.do(ctx, at, func(ctx context.Context) (err error) {
				ok, err = t.Exists(ctx, names.ManifestKey(d.Key, up.Seq))
				return err
			})
			if err != nil {
				return fmt.Errorf("check history of version %d in %s: %w", up.Seq, t, err)
			}
			missing = missing || !ok
		}
		if !missing {
			c.mu.Lock()
			st.hist.written = max(st.hist.written, up.Seq)
			c.mu.Unlock()
			return nil
		}
	default:
		return nil
	}
	hist, err := c.historyEncoding(ctx, at, up, upEnc) // stores its inline chunks first
	if err != nil {
		return fmt.Errorf("write history of version %d: %w", up.Seq, err)
	}
	for _, t := range c.opts.Targets {
		err := c.do(ctx, at, func(ctx context.Context) error {
			return t.Put(ctx, names.ManifestKey(d.Key, up.Seq), hist)
		})
		if err != nil {
			return fmt.Errorf("write history of version %d to %s: %w", up.Seq, t, err)
		}
	}
	c.mu.Lock()
	if st.hist.pending == up.Seq || st.hist.pending == 0 {
		st.hist = history{at: now, written: up.Seq, waiting: st.hist.waiting} // as in recordHistory
	}
	c.mu.Unlock()
	return nil
}

// flushHistory makes sure the recorded upload of st, which another
// uploader made while a flush waited, has its history object. It runs
// without the upload locks: a history object is immutable and any
// encoding of the version will do.
func (c *Copier) flushHistory(ctx context.Context, st *dbState) error {
	d, err := spool.Existing(c.opts.SpoolDir, st.key)
	if err != nil {
		return nil // reclaimed: nothing left to flush
	}
	up, upEnc, err := d.Uploaded()
	if err != nil {
		return nil // the next upload rewrites a damaged record
	}
	return c.settleHistory(ctx, d, &attempt{st: st, sync: true}, up, upEnc)
}
