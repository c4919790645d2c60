package copier

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// LagBuckets are the upper bounds (seconds) of the replication-lag
// histogram: time from commit to manifest visible in the store.
var LagBuckets = []float64{0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30, 60, 300, 3600}

// Stats holds the copier's counters.
type Stats struct {
	requests, retries, errors, dropped atomic.Int64
	chunks, bytes, manifests           atomic.Int64

	mu       sync.Mutex
	lagCount []int64 // per bucket, plus +Inf
	lagSum   float64
	lagN     int64
	lagMax   float64
}

func newStats() *Stats { return &Stats{lagCount: make([]int64, len(LagBuckets)+1)} }

func (s *Stats) observeLag(d time.Duration) {
	v := d.Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	for i < len(LagBuckets) && v > LagBuckets[i] {
		i++
	}
	s.lagCount[i]++
	s.lagSum += v
	s.lagN++
	s.lagMax = max(s.lagMax, v)
}

// Snapshot is a copy of the copier's counters.
type Snapshot struct {
	Requests, Retries, Errors, DroppedSignals int64
	ChunksUploaded, BytesUploaded, Manifests  int64
	// LagCounts[i] counts uploads with lag ≤ LagBuckets[i] (non-cumulative);
	// the last entry counts the rest.
	LagCounts []int64
	LagSum    float64
	LagN      int64
	LagMax    float64
}

func (s *Stats) snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{
		Requests: s.requests.Load(), Retries: s.retries.Load(), Errors: s.errors.Load(),
		DroppedSignals: s.dropped.Load(), ChunksUploaded: s.chunks.Load(),
		BytesUploaded: s.bytes.Load(), Manifests: s.manifests.Load(),
		LagCounts: append([]int64(nil), s.lagCount...), LagSum: s.lagSum, LagN: s.lagN, LagMax: s.lagMax,
	}
}

// limiter is a token bucket shared by every request of the process.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

func (l *limiter) wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		now := time.Now()
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
		if l.tokens >= 1 {
			l.tokens--
			l.mu.Unlock()
			return nil
		}
		need := time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(need):
		}
	}
}
