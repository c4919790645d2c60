package copier

import (
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// TestLatestOnlyDeltasAndNewBase: between history objects, versions are
// published as deltas against the base in history; a version whose
// latest would be full gets its history object and becomes the new base,
// instead of ending the chain (every later version full until the next
// history object).
func TestLatestOnlyDeltasAndNewBase(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s, func(o *Options) { o.HistoryInterval = time.Hour; o.Interval = 10 * time.Millisecond })
	key := K("b")
	data := randomBytes(64*testChunk, 9)
	publish := func(seq uint64) (full bool) {
		t.Helper()
		data[27] = byte(seq)
		stageNamed(t, root, key, "test:b", seq, data)
		c.Notify(key)
		waitFor(t, 10*time.Second, "the version uploaded", func() bool { return latestSeq(t, s, key) == seq })
		obj, _ := s.get(names.LatestKey(key))
		_, d, err := manifest.DecodeObject(obj)
		if err != nil {
			t.Fatal(err)
		}
		restoreEquals(t, s, mustVersion(t, s, key, seq), data)
		return d == nil
	}
	publish(1) // the first: history, base
	// The second too, as before history objects were deferred: the
	// copier learns the store's version scheme when it first reads
	// latest, and without it a delta is not written.
	data[2*testChunk] ^= 1
	publish(2)
	for seq := uint64(3); seq <= 4; seq++ {
		data[int(seq)*testChunk] ^= 1
		if publish(seq) || hasHistory(s, key, seq) {
			t.Fatalf("version %d: full latest or history object; want a latest-only delta", seq)
		}
	}
	// Whatever the encoder chooses for a large change, a full latest
	// has its history object (it is the new base).
	for seq := uint64(5); seq <= 8; seq++ {
		for i := 1; i < 64; i += int(seq) - 3 {
			data[i*testChunk+3] ^= 0xff
		}
		if publish(seq) && !hasHistory(s, key, seq) {
			t.Fatalf("version %d published full without a history object", seq)
		}
	}
}
