package copier

import (
	"bytes"
	"container/heap"
	"context"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// The pacing tests drive the scheduler by hand: the copier is not
// started, so no dispatcher or timer runs, and each background run
// happens when the test calls runNow, whatever its due time. With an
// interval of an hour, no outcome depends on how fast the machine is.

const pacingInterval = time.Hour

func newPacingCopier(t *testing.T, s blob.Store) (*Copier, string) {
	t.Helper()
	root := t.TempDir()
	c := New(Options{SpoolDir: root, Targets: []blob.Store{s}, Interval: pacingInterval,
		HistoryInterval: time.Hour, FullEvery: -1, ScanInterval: -1, RateLimit: 10000, PackBytes: -1})
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c, root
}

// runNow runs the background upload of key that the scheduler holds
// (waiting or ready), as the dispatcher would once it is due.
func runNow(t *testing.T, c *Copier, key string) {
	t.Helper()
	c.mu.Lock()
	st := c.dbs[key]
	switch {
	case st == nil:
		c.mu.Unlock()
		t.Fatalf("%s: no record", key)
	case st.sched == waiting:
		heap.Remove(&c.delay, st.index)
	case st.sched == ready && c.ready.len() == 1 && c.ready.items[c.ready.head] == st:
		c.ready.pop()
	default:
		sched := st.sched
		c.mu.Unlock()
		t.Fatalf("%s: not scheduled (state %d)", key, sched)
	}
	st.sched = running
	c.running++
	c.mu.Unlock()
	c.run(context.Background(), st)
}

// pacing returns the scheduler's view of key: its state, due time and
// theoretical time.
func pacing(c *Copier, key string) (sched schedState, due, tat time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.dbs[key]
	return st.sched, st.due, st.tat
}

// TestHistoryRunKeepsVersionPacing: a hot database's newest version is
// published as latest only, and its history object is written later by a
// run of its own. That run publishes no version, so the next version must
// keep the slot the last one left it: the run used to count as an upload
// and push the next version a whole interval later (in the lag benchmark,
// 100 commits a second, a version every 2 s instead of 1 s once per
// history_interval: the commits of that second made the lag's p99). The
// versions themselves stay paced one interval apart.
func TestHistoryRunKeepsVersionPacing(t *testing.T) {
	s := newMemStore()
	c, root := newPacingCopier(t, s)
	key, name := K("pace"), "test:pace"
	v1 := randomBytes(4*testChunk, 21)
	stageNamed(t, root, key, name, 1, v1)
	c.Notify(key)
	runNow(t, c, key) // the first version of the process: with history
	if latestSeq(t, s, key) != 1 || !hasHistory(s, key, 1) {
		t.Fatalf("version 1: latest %d, history %v", latestSeq(t, s, key), hasHistory(s, key, 1))
	}

	v2 := bytes.Clone(v1)
	v2[27], v2[2*testChunk] = 2, v2[2*testChunk]^1
	stageNamed(t, root, key, name, 2, v2)
	c.Notify(key)
	runNow(t, c, key)
	if latestSeq(t, s, key) != 2 || hasHistory(s, key, 2) {
		t.Fatalf("version 2: latest %d, history %v (want latest only)", latestSeq(t, s, key), hasHistory(s, key, 2))
	}
	sched, _, tat2 := pacing(c, key)
	if sched != waiting {
		t.Fatalf("version 2 latest only: state %d, want waiting for its history object", sched)
	}

	// The history interval is over: the run writes version 2's history.
	c.mu.Lock()
	c.dbs[key].hist.at = c.dbs[key].hist.at.Add(-time.Hour)
	c.mu.Unlock()
	puts := s.count("put")
	runNow(t, c, key)
	if !hasHistory(s, key, 2) || latestSeq(t, s, key) != 2 {
		t.Fatalf("after the history run: history of 2 %v, latest %d", hasHistory(s, key, 2), latestSeq(t, s, key))
	}
	if n := s.count("put") - puts; n < 1 {
		t.Fatalf("the history run put %d objects", n)
	}
	sched, _, tat := pacing(c, key)
	if sched != idle || !tat.Equal(tat2) {
		t.Fatalf("after the history run: state %d, theoretical time moved by %v (want idle, unmoved)", sched, tat.Sub(tat2))
	}

	v3 := bytes.Clone(v2)
	v3[27], v3[3*testChunk] = 3, v3[3*testChunk]^1
	stageNamed(t, root, key, name, 3, v3)
	c.Notify(key)
	sched, due, _ := pacing(c, key)
	if want := tat2.Add(-pacingInterval / 2); sched != waiting || !due.Equal(want) {
		t.Fatalf("version 3: state %d, due %v after the slot version 2 left (want waiting, at the slot)", sched, due.Sub(want))
	}
	runNow(t, c, key)
	restoreEquals(t, s, mustVersion(t, s, key, 3), v3)
	if _, _, tat3 := pacing(c, key); !tat3.Equal(tat2.Add(pacingInterval)) {
		t.Fatalf("version 3 moved the theoretical time by %v, want one interval", tat3.Sub(tat2))
	}
}

// TestFlushedRunKeepsVersionPacing: a flush uploads the version the
// background was about to; the background run then finds nothing to do
// and must not delay the next version either.
func TestFlushedRunKeepsVersionPacing(t *testing.T) {
	s := newMemStore()
	c, root := newPacingCopier(t, s)
	key, name := K("flushed"), "test:flushed"
	v1 := randomBytes(3*testChunk, 22)
	stageNamed(t, root, key, name, 1, v1)
	c.Notify(key)
	runNow(t, c, key)

	v2 := bytes.Clone(v1)
	v2[27], v2[testChunk] = 2, v2[testChunk]^1
	stageNamed(t, root, key, name, 2, v2)
	c.Notify(key)
	_, due, tat := pacing(c, key)
	if err := c.Upload(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	restoreEquals(t, s, mustVersion(t, s, key, 2), v2)
	requests := s.count("all")
	runNow(t, c, key)
	if n := s.count("all") - requests; n != 0 {
		t.Fatalf("the run after the flush made %d requests, want none", n)
	}
	sched, _, after := pacing(c, key)
	if sched != idle || !after.Equal(tat) {
		t.Fatalf("after the empty run: state %d, theoretical time moved by %v (want idle, unmoved)", sched, after.Sub(tat))
	}
	v3 := bytes.Clone(v2)
	v3[27], v3[2*testChunk] = 3, v3[2*testChunk]^1
	stageNamed(t, root, key, name, 3, v3)
	c.Notify(key)
	if _, due3, _ := pacing(c, key); !due3.Equal(due) {
		t.Fatalf("version 3 due %v after the slot version 2 had (want the same slot)", due3.Sub(due))
	}
	runNow(t, c, key)
	restoreEquals(t, s, mustVersion(t, s, key, 3), v3)
}
