package copier

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// LagBuckets are the upper bounds (seconds) of the replication-lag
// histograms: time from commit to manifest visible in the store.
var LagBuckets = []float64{0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30, 60, 300, 3600}

// Histogram is a snapshot of a lag histogram.
type Histogram struct {
	// Counts[i] counts observations ≤ LagBuckets[i] and > LagBuckets[i-1]
	// (non-cumulative); the last entry counts the rest.
	Counts []int64
	Sum    float64 // seconds
	N      int64
	Max    float64 // seconds
}

// histogram accumulates lag observations; the caller synchronises.
type histogram struct {
	counts [13]int64 // len(LagBuckets)+1
	sum    float64
	n      int64
	max    float64
}

func (h *histogram) observe(v float64) {
	i := 0
	for i < len(LagBuckets) && v > LagBuckets[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.n++
	h.max = max(h.max, v)
}

func (h *histogram) snapshot() Histogram {
	return Histogram{Counts: append([]int64(nil), h.counts[:]...), Sum: h.sum, N: h.n, Max: h.max}
}

// stats holds the process-wide counters.
type stats struct {
	requests, retries, requestErrors atomic.Int64
	uploads, uploadErrors            atomic.Int64
	chunks, chunkBytes, packs        atomic.Int64
	manifests, manifestBytes         atomic.Int64
	scans, scanErrors                atomic.Int64
	scanned, scanDirty               atomic.Int64
	resequenced, superseded          atomic.Int64
	repacks, repackedPacks           atomic.Int64
	repackedBytes, repackErrors      atomic.Int64
	panics                           atomic.Int64

	mu  sync.Mutex
	lag histogram
}

func (s *stats) observeLag(d time.Duration) {
	s.mu.Lock()
	s.lag.observe(max(d.Seconds(), 0))
	s.mu.Unlock()
}

// Snapshot is a copy of the copier's process-wide counters and gauges.
type Snapshot struct {
	// Requests counts blob-store requests, retries included; Retries the
	// requests that were retried after a transient error; RequestErrors
	// the requests that failed.
	Requests, Retries, RequestErrors int64
	// Uploads counts upload attempts of a database (one manifest and the
	// chunks it needs); Errors the attempts that failed.
	Uploads, Errors int64
	// ChunksUploaded and BytesUploaded count chunk objects written (to
	// every target); Manifests the manifests published; ManifestBytes
	// their encoded size. PacksUploaded counts the pack objects that
	// carried some of the chunks.
	ChunksUploaded, BytesUploaded int64
	PacksUploaded                 int64
	Manifests, ManifestBytes      int64
	// Scans counts background spool scans; ScanErrors the scans that
	// could not list the spool.
	Scans, ScanErrors int64
	// SpoolsScanned counts the spools the scans examined; DirtyScanned
	// those of them examined because they were marked dirty.
	SpoolsScanned, DirtyScanned int64
	// Resequenced counts manifests renumbered after the store's latest
	// because their clock-derived version number was not above it (clock
	// skew; see docs/FORMAT.md); Superseded counts staged manifests not
	// published as latest because the store (or the upload record) holds
	// a newer state of the database.
	Resequenced, Superseded int64
	// Repacks counts the uploads that moved the live records of mostly
	// dead packs to new packs in every target (repack.go), the version
	// then published with their new locations; RepackedPacks the packs
	// they left, RepackedBytes the bytes of the records re-sent, and
	// RepackErrors the repacks given up (a failed or corrupt read, a
	// missing pack, a failed PUT: the version kept the old locations).
	Repacks, RepackedPacks, RepackedBytes, RepackErrors int64

	// Lag is the replication-lag histogram over every published manifest.
	Lag Histogram
	// LagCounts, LagSum, LagN and LagMax repeat Lag's fields.
	LagCounts []int64
	LagSum    float64
	LagN      int64
	LagMax    float64

	// Databases is the number of databases the copier knows (spools seen
	// by the scan or signalled); PendingDatabases those with a staged
	// version newer than the uploaded one; FailingDatabases those whose
	// last upload failed; SpoolBytes the bytes in their spools (as of the
	// last scan or upload).
	Databases, PendingDatabases, FailingDatabases int
	SpoolBytes                                    int64
	// Ready, Waiting and Running count databases queued for a worker,
	// waiting for their coalescing interval or retry backoff, and being
	// uploaded.
	Ready, Waiting, Running int
	// Paused reports that uploads are paused because the blob store keeps
	// failing (ConsecutiveFailures database uploads in a row); one probe
	// upload runs at a time until one succeeds.
	Paused              bool
	ConsecutiveFailures int
	// KnownChunks is the size of the cache of chunks known to be present
	// in every target.
	KnownChunks int
	// Panics counts panics recovered in the copier's goroutines (each
	// failed the upload it happened in, which is retried).
	Panics int64
	// NoConditionalWrites lists the targets found to ignore conditional
	// writes (If-Match, If-None-Match): for them "latest" is updated by
	// read, compare and write, which racing copiers on several hosts can
	// defeat (docs/OPERATIONS.md).
	NoConditionalWrites []string
}

// DBSnapshot is a copy of one database's counters and state.
type DBSnapshot struct {
	Key  string
	Path string // source database path, when known

	// Pending reports a staged version newer than the uploaded one;
	// LagSeconds is then the age of the oldest commit known to wait.
	Pending    bool
	LagSeconds float64
	SpoolBytes int64

	Requests, Retries, Uploads, Errors int64
	Manifests, Chunks, ChunkBytes      int64

	// Last published manifest: version, source commit time, time it
	// became visible in every target, and its replication lag.
	LastVersion    uint64
	LastCommitTime time.Time
	LastVisible    time.Time
	LastLagSeconds float64
	// LastSignal is when this copier learned of the oldest commit in the
	// last published manifest (the tracker's signal); zero when the
	// manifest was found by a scan or a flush.
	LastSignal time.Time
	Lag        Histogram

	// ConsecutiveFailures, LastError and LastErrorTime describe the
	// current run of failed uploads (zero after a success); NextAttempt is
	// when the next background attempt is due.
	ConsecutiveFailures int
	LastError           string
	LastErrorTime       time.Time
	NextAttempt         time.Time
}

// newLimiter returns the token bucket shared by every request of the
// process: r requests per second with bursts of burst, or no limit when r
// is +Inf (targets that are all local directories).
func newLimiter(r float64, burst int) *rate.Limiter {
	if math.IsInf(r, 1) {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(r), burst)
}

// waitLimit takes one token of l, sleeping until one is available. A wait
// that would outlast ctx's deadline fails at once (with
// context.DeadlineExceeded) instead of sleeping until then.
func waitLimit(ctx context.Context, l *rate.Limiter) error {
	if err := l.Wait(ctx); err != nil {
		if ctx.Err() == nil {
			err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
		return fmt.Errorf("waiting for the request rate limit: %w", err)
	}
	return nil
}
