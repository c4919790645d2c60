package copier

import (
	"container/heap"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// Stats returns a snapshot of the copier's process-wide counters.
func (c *Copier) Stats() Snapshot {
	s := &c.stats
	s.mu.Lock()
	lag := s.lag.snapshot()
	s.mu.Unlock()
	snap := Snapshot{
		Requests: s.requests.Load(), Retries: s.retries.Load(), RequestErrors: s.requestErrors.Load(),
		Uploads: s.uploads.Load(), Errors: s.uploadErrors.Load(),
		ChunksUploaded: s.chunks.Load(), BytesUploaded: s.chunkBytes.Load(), PacksUploaded: s.packs.Load(),
		Manifests: s.manifests.Load(), ManifestBytes: s.manifestBytes.Load(),
		Scans: s.scans.Load(), ScanErrors: s.scanErrors.Load(),
		SpoolsScanned: s.scanned.Load(), DirtyScanned: s.scanDirty.Load(),
		Resequenced: s.resequenced.Load(), Superseded: s.superseded.Load(),
		Repacks: s.repacks.Load(), RepackedPacks: s.repackedPacks.Load(),
		RepackedBytes: s.repackedBytes.Load(), RepackErrors: s.repackErrors.Load(),
		Lag: lag, LagCounts: lag.Counts, LagSum: lag.Sum, LagN: lag.N, LagMax: lag.Max,
		KnownChunks: c.known.len(), Panics: s.panics.Load(),
	}
	for i := range c.conds {
		if c.conds[i].Load() == condIgnored {
			snap.NoConditionalWrites = append(snap.NoConditionalWrites, c.opts.Targets[i].String())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.dbs {
		snap.Databases++
		if st.pending {
			snap.PendingDatabases++
		}
		if st.failures > 0 {
			snap.FailingDatabases++
		}
		snap.SpoolBytes += st.spoolBytes
	}
	for _, i := range c.idle {
		snap.Databases++
		snap.SpoolBytes += i.bytes
	}
	snap.Ready = c.ready.len()
	snap.Waiting = c.delay.Len()
	snap.Running = c.running
	snap.Paused = c.breaker.paused
	snap.ConsecutiveFailures = c.breaker.fails
	return snap
}

// DBStats returns a snapshot of every known database, in no particular
// order.
func (c *Copier) DBStats() []DBSnapshot {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]DBSnapshot, 0, len(c.dbs))
	for _, st := range c.dbs {
		out = append(out, c.dbSnapshotLocked(st, now))
	}
	return out
}

// DBStat returns the snapshot of one database, and whether it is known.
func (c *Copier) DBStat(key string) (DBSnapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.dbs[key]
	if st == nil {
		return DBSnapshot{}, false
	}
	return c.dbSnapshotLocked(st, time.Now()), true
}

func (c *Copier) dbSnapshotLocked(st *dbState, now time.Time) DBSnapshot {
	s := DBSnapshot{
		Key: st.key, Path: st.path, Pending: st.pending, SpoolBytes: st.spoolBytes,
		Requests: st.requests.Load(), Retries: st.retries.Load(), Uploads: st.uploads, Errors: st.errs,
		Manifests: st.manifests, Chunks: st.chunks, ChunkBytes: st.chunkBytes,
		LastVersion: st.lastSeq, LastCommitTime: st.lastCommit, LastVisible: st.lastVisible,
		LastLagSeconds: st.lastLag, LastSignal: st.lastSignal, ConsecutiveFailures: st.failures,
		LastError: st.lastErr, LastErrorTime: st.lastErrAt,
	}
	if st.pending {
		if oldest := earliest(earliest(st.pendingSince, st.againSince), st.stagedCommit); !oldest.IsZero() {
			s.LagSeconds = max(now.Sub(oldest).Seconds(), 0)
		}
	}
	if st.sched == waiting {
		s.NextAttempt = st.due
	}
	if st.lag != nil {
		s.Lag = st.lag.snapshot()
	} else {
		s.Lag = Histogram{Counts: make([]int64, len(LagBuckets)+1)}
	}
	return s
}

func spoolPath(root, key string) string { return filepath.Join(spool.DBsDir(root), key) }

// earliest returns the earlier of two times, ignoring zero times.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	default:
		return b
	}
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fifo is a queue of databases.
type fifo struct {
	items []*dbState
	head  int
}

func (q *fifo) len() int { return len(q.items) - q.head }

func (q *fifo) push(st *dbState) { q.items = append(q.items, st) }

func (q *fifo) pop() *dbState {
	st := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 64 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return st
}

// delayHeap orders waiting databases by due time.
type delayHeap []*dbState

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h delayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *delayHeap) Push(x any) {
	st := x.(*dbState)
	st.index = len(*h)
	*h = append(*h, st)
}
func (h *delayHeap) Pop() any {
	old := *h
	st := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	st.index = -1
	return st
}

// breaker pauses background uploads while the store keeps failing.
type breaker struct {
	fails      int // database uploads in a row that failed with store errors
	paused     bool
	pausedAt   time.Time
	pauseUntil time.Time
	probing    bool // a probe upload is running
}

func (c *Copier) breakerFailLocked(now time.Time, err error) {
	c.breaker.fails++
	if c.opts.PauseAfter < 0 || c.breaker.fails < c.opts.PauseAfter {
		return
	}
	d := jittered(c.opts.RetryMin, c.opts.ProbeMax, c.breaker.fails-c.opts.PauseAfter+1)
	c.breaker.pauseUntil = now.Add(d)
	if !c.breaker.paused {
		c.breaker.paused = true
		c.breaker.pausedAt = now
		c.log.Error("blob store keeps failing; pausing uploads and probing it with one database at a time",
			"failures", c.breaker.fails, "next_probe_in", d.Round(time.Millisecond), "err", err)
		return
	}
	c.log.Warn("blob store still failing", "failures", c.breaker.fails,
		"paused_for", now.Sub(c.breaker.pausedAt).Round(time.Second),
		"next_probe_in", d.Round(time.Millisecond), "err", err)
}

func (c *Copier) breakerOKLocked(now time.Time) {
	c.breaker.fails = 0
	if !c.breaker.paused {
		return
	}
	c.breaker.paused = false
	c.breaker.probing = false
	c.breaker.pauseUntil = time.Time{}
	// Databases backing off because of the outage are retried soon,
	// spread over one interval, instead of at the end of their backoff.
	n := 0
	for _, st := range c.delay {
		if st.backoff > 0 {
			st.backoff = 0
			st.due = now.Add(rand.N(c.opts.Interval + 1))
			n++
		}
	}
	heap.Init(&c.delay)
	c.wakeup()
	c.log.Info("blob store answering again; resuming uploads",
		"paused_for", now.Sub(c.breaker.pausedAt).Round(time.Second), "retrying_databases", n)
}
