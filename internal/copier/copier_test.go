package copier

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

var errDown = errors.New("connection refused (test)")

func permanentErr(op, key string) error {
	return fmt.Errorf("%s %s: bucket \"nope\" does not exist: %w", op, key, blob.ErrPermanent)
}

func TestUploadChunksBeforeManifest(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s)
	data := randomBytes(3*testChunk+100, 1)
	copy(data[2*testChunk:], make([]byte, testChunk)) // a zero chunk: never stored
	m := stage(t, root, "db1", 10, data)
	c.Notify("db1")
	waitFor(t, 5*time.Second, "upload", func() bool { return c.Stats().Manifests == 1 })

	s.mu.Lock()
	writes := append([]string(nil), s.writes...)
	s.mu.Unlock()
	var chunkPuts int
	manifestAt, latestAt := -1, -1
	for i, k := range writes {
		switch {
		case strings.HasPrefix(k, "chunks/"):
			chunkPuts++
			if manifestAt >= 0 {
				t.Errorf("chunk %s written after the manifest", k)
			}
		case k == names.ManifestKey("db1", 10):
			manifestAt = i
		case k == names.LatestKey("db1"):
			latestAt = i
		}
	}
	if chunkPuts != 2 || manifestAt < 0 || latestAt < manifestAt {
		t.Fatalf("writes %v: want 2 chunks, then the manifest, then latest", writes)
	}
	for _, i := range []int{1, 3} {
		obj, ok := s.get(names.ChunkKey(m.Chunks[i].String()))
		if !ok {
			t.Fatalf("chunk %d missing", i)
		}
		if _, err := manifest.DecodeChunk(obj, m.Chunks[i], testChunk); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := spool.Existing(root, "db1")
	if staged, _ := d.StagedChunks(); len(staged) != 0 {
		t.Errorf("staged chunks left after upload: %v", staged)
	}
	if up, _, _ := d.Uploaded(); up == nil || up.Seq != 10 {
		t.Errorf("uploaded record = %v", up)
	}
	st := c.Stats()
	if st.Manifests != 1 || st.ChunksUploaded != 2 || st.LagN != 1 {
		t.Errorf("stats = %+v", st)
	}
	ds, ok := c.DBStat("db1")
	if !ok || ds.Manifests != 1 || ds.LastVersion != 10 || ds.Path != "/data/db1.db" || ds.Pending {
		t.Errorf("db stats = %+v", ds)
	}
}

func TestCoalescing(t *testing.T) {
	s := newMemStore()
	const interval = 300 * time.Millisecond
	c, root := newTestCopier(t, s, func(o *Options) { o.Interval = interval })
	data := randomBytes(testChunk, 2)
	start := time.Now()
	var seq uint64
	for time.Since(start) < 1500*time.Millisecond {
		seq++
		data[seq%100] ^= 1
		stage(t, root, "hot", seq, data)
		c.Notify("hot")
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	waitFor(t, 5*time.Second, "last version", func() bool { return latestSeq(t, s, "hot") == seq })
	s.mu.Lock()
	var times []time.Time
	for k, ts := range s.times {
		if strings.HasPrefix(k, names.ManifestsPrefix("hot")) {
			times = append(times, ts...)
		}
	}
	s.mu.Unlock()
	if len(times) < 2 || len(times) > int(elapsed/interval)+2 {
		t.Fatalf("%d manifests for %d commits in %v with interval %v", len(times), seq, elapsed, interval)
	}
	slicesSortTimes(times)
	for i := 2; i < len(times); i++ {
		// Due times of uploads two apart are ≥ interval apart; a PUT
		// can lag its due time a little on a loaded machine.
		if gap := times[i].Sub(times[i-2]); gap < interval*3/4 {
			t.Errorf("manifests %d and %d only %v apart", i-2, i, gap)
		}
	}
	t.Logf("%d commits, %d manifests", seq, len(times))
}

// A database whose upload started late because the pool was busy gets its
// next slot counted from when the late upload was due, not from its late
// start: otherwise every stall of the pool would add to the lag of every
// database for as long as it keeps committing.
func TestCoalescingSlotsDoNotDrift(t *testing.T) {
	s := newMemStore()
	// Long enough that the second upload still waits for its slot when
	// the test reaches it on a loaded machine.
	const interval = 8 * time.Second
	release := make(chan struct{})
	s.setFail(func(op, key string) error {
		if strings.Contains(key, "blocker") {
			<-release
		}
		return nil
	})
	c, root := newTestCopier(t, s, func(o *Options) { o.Interval = interval; o.Workers = 1 })
	data := randomBytes(testChunk, 1)
	stage(t, root, "blocker", 1, data)
	c.Notify("blocker")
	waitFor(t, 5*time.Second, "the blocker to hold the only worker", func() bool { return c.Stats().Running == 1 })

	stage(t, root, "hot", 1, data)
	// The copier takes its own clock reading inside Notify: the first
	// upload was due somewhere in [dueFrom, dueTo].
	dueFrom := time.Now()
	c.Notify("hot") // due now, but the only worker is busy
	dueTo := time.Now()
	time.Sleep(300 * time.Millisecond)
	close(release)
	waitFor(t, 5*time.Second, "hot's first upload to end", func() bool {
		return latestSeq(t, s, "hot") == 1 && c.Stats().Running == 0
	})

	data[0] ^= 1
	stage(t, root, "hot", 2, data)
	c.Notify("hot")
	st, ok := c.DBStat("hot")
	if !ok || st.NextAttempt.IsZero() {
		t.Fatalf("hot not waiting for its next slot: %+v", st)
	}
	// The next slot is one interval less the tolerance (half an
	// interval) after the first was due; a drifting schedule would count
	// from the upload's start instead, ≥ 300 ms after dueTo (the sleep
	// before release). Bounds from both clock readings keep this free of
	// scheduling delays on a loaded machine.
	lo, hi := dueFrom.Add(interval/2), dueTo.Add(interval/2)
	if st.NextAttempt.Before(lo) || st.NextAttempt.After(hi) {
		t.Fatalf("next slot %v after the first was due (between %v and %v after dueFrom); want one interval less the tolerance",
			st.NextAttempt.Sub(dueFrom), interval/2, hi.Sub(dueFrom))
	}
	waitFor(t, interval+5*time.Second, "hot's second upload", func() bool { return latestSeq(t, s, "hot") == 2 })
}

func slicesSortTimes(ts []time.Time) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Before(ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

func TestManyDatabasesIdleCostNothing(t *testing.T) {
	s := newMemStore()
	before := runtime.NumGoroutine()
	c, root := newTestCopier(t, s, func(o *Options) { o.Workers = 4 })
	const n = 300
	for i := range n {
		key := fmt.Sprintf("db%03d", i)
		stage(t, root, key, 1, randomBytes(1000, uint64(i)))
		c.Notify(key)
	}
	waitFor(t, 20*time.Second, "all uploaded", func() bool { return c.Stats().Manifests == n })
	waitFor(t, 2*time.Second, "idle", func() bool { st := c.Stats(); return st.Running == 0 && st.Ready == 0 })
	// One dispatcher and the workers, whatever the number of databases.
	if g := runtime.NumGoroutine() - before; g > 1+4 {
		t.Errorf("%d goroutines for %d databases", g, n)
	}
	reqs := s.count("all")
	for range 3 {
		c.Scan(context.Background())
	}
	time.Sleep(300 * time.Millisecond)
	if got := s.count("all") - reqs; got != 0 {
		t.Errorf("idle databases made %d requests", got)
	}
	st := c.Stats()
	if st.Databases != n || st.PendingDatabases != 0 || st.Waiting != 0 {
		t.Errorf("stats = %+v", st)
	}
	// Steady state: a single conditional PUT updates latest.
	for i := range n {
		key := fmt.Sprintf("db%03d", i)
		for v := uint64(2); v <= 3; v++ {
			stage(t, root, key, v, randomBytes(1000, uint64(i)+v*1000))
			if err := c.Upload(context.Background(), key); err != nil {
				t.Fatal(err)
			}
		}
	}
	reqs = s.count("all")
	for i := range n {
		key := fmt.Sprintf("db%03d", i)
		stage(t, root, key, 4, randomBytes(1000, uint64(i)+4000))
		if err := c.Upload(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.count("all") - reqs; got != 2*n {
		t.Errorf("%d requests for %d manifests, want 2 each (manifest PUT, conditional latest PUT)", got, n)
	}
}

func TestTransientErrorsRetried(t *testing.T) {
	s := newMemStore()
	var mu sync.Mutex
	fails := 0
	s.setFail(func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		if op == "put" && strings.Contains(key, "/manifests/") && fails < 2 {
			fails++
			return errDown
		}
		return nil
	})
	c, root := newTestCopier(t, s)
	stage(t, root, "db", 5, randomBytes(100, 3))
	if err := c.Upload(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Retries != 2 || st.Errors != 0 {
		t.Errorf("stats = %+v, want 2 retries and no failed upload", st)
	}
}

func TestPermanentErrorNotHotLooping(t *testing.T) {
	s := newMemStore()
	s.setFail(permanentErr)
	c, root := newTestCopier(t, s, func(o *Options) {
		o.RetryMin = 100 * time.Millisecond
		o.RetryMax = 400 * time.Millisecond
		o.PauseAfter = -1
	})
	stage(t, root, "db", 5, randomBytes(100, 4))
	c.Notify("db")
	time.Sleep(2 * time.Second)
	st := c.Stats()
	// Backoff 50-100, 100-200, 200-400, then 200-400 ms: at most ~9 attempts.
	if st.Uploads < 3 || st.Uploads > 10 {
		t.Errorf("%d upload attempts in 2s", st.Uploads)
	}
	if st.Retries != 0 || st.Requests != st.Uploads {
		t.Errorf("permanent errors were retried: %+v", st)
	}
	d, _ := spool.Existing(root, "db")
	le, err := d.ReadLastError()
	if err != nil || le == nil {
		t.Fatalf("last_error = %v, %v", le, err)
	}
	if !le.Permanent || !strings.Contains(le.Message, `bucket "nope" does not exist`) || le.Failures < 3 || le.PID != os.Getpid() {
		t.Errorf("last_error = %+v", le)
	}
	if ds, _ := c.DBStat("db"); ds.ConsecutiveFailures < 3 || ds.LastError == "" {
		t.Errorf("db stats = %+v", ds)
	}
	// Fixed: the next attempt succeeds and clears the record.
	s.setFail(nil)
	waitFor(t, 3*time.Second, "recovery", func() bool { return latestSeq(t, s, "db") == 5 })
	waitFor(t, time.Second, "record cleared", func() bool {
		le, _ := d.ReadLastError()
		return le == nil
	})
	if ds, _ := c.DBStat("db"); ds.ConsecutiveFailures != 0 || ds.LastError != "" {
		t.Errorf("db stats after recovery = %+v", ds)
	}
}

func TestOutagePausesAndRecovers(t *testing.T) {
	s := newMemStore()
	s.setFail(func(string, string) error { return errDown })
	c, root := newTestCopier(t, s, func(o *Options) {
		o.MaxAttempts = 2
		o.RetryMin = 100 * time.Millisecond
		o.RetryMax = 500 * time.Millisecond
	})
	const n = 50
	for i := range n {
		key := fmt.Sprintf("db%02d", i)
		stage(t, root, key, 1, randomBytes(100, uint64(i)))
		c.Notify(key)
	}
	time.Sleep(2 * time.Second)
	st := c.Stats()
	if !st.Paused {
		t.Errorf("not paused during the outage: %+v", st)
	}
	// Without pausing, every database would fail with 2 requests, then
	// again after its backoff: hundreds of requests.
	if got := s.count("all"); got > 40 {
		t.Errorf("%d requests to a store that is down", got)
	}
	s.setFail(nil)
	start := time.Now()
	waitFor(t, 5*time.Second, "catch-up", func() bool { return c.Stats().Manifests == n })
	t.Logf("caught up %d databases in %v after the outage (%d requests during it)", n, time.Since(start), st.Requests)
	if st := c.Stats(); st.Paused || st.FailingDatabases != 0 {
		t.Errorf("after recovery: %+v", st)
	}
}

func TestLatestNeverRegresses(t *testing.T) {
	s := newMemStore()
	// Two hosts with the same replica name: two spools, two copiers.
	a, rootA := newTestCopier(t, s)
	b, rootB := newTestCopier(t, s)
	var wg sync.WaitGroup
	for i, cp := range []*Copier{a, b} {
		root := []string{rootA, rootB}[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range 40 {
				seq := uint64(v*2 + i + 1)
				// Change counters in version order: a lower version is an
				// older state, never renumbered over a higher one.
				stage(t, root, "shared", seq, dbBytes(200, seq, uint32(seq)))
				// Beaten by the other host's higher version: superseded.
				if err := cp.Upload(context.Background(), "shared"); err != nil && !errors.Is(err, ErrSuperseded) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := latestSeq(t, s, "shared"); got != 80 {
		t.Errorf("latest = %d, want 80", got)
	}
	s.mu.Lock()
	regress := append([]string(nil), s.regress...)
	s.mu.Unlock()
	if len(regress) > 0 {
		t.Errorf("latest regressed: %v", regress)
	}
	// A newer latest written elsewhere is left alone. Version 1000 is in
	// the store before 81 is staged: the loop's superseded uploads left
	// background retries scheduled in both copiers, and a retry of a that
	// found 81 staged before b published 1000 would rightly upload it.
	stage(t, rootB, "shared", 1000, dbBytes(200, 1000, 1000))
	if err := b.Upload(context.Background(), "shared"); err != nil {
		t.Fatal(err)
	}
	stage(t, rootA, "shared", 81, dbBytes(200, 81, 81))
	if err := a.Upload(context.Background(), "shared"); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("Upload of a version below the latest: %v, want ErrSuperseded", err)
	}
	if got := latestSeq(t, s, "shared"); got != 1000 {
		t.Errorf("latest = %d after an older upload, want 1000", got)
	}
	if _, ok := s.get(names.ManifestKey("shared", 81)); !ok {
		t.Error("version 81 not kept in manifests/")
	}
}

func TestLatestVersionPredictionFileStore(t *testing.T) {
	dir := t.TempDir()
	fs, err := fileblob.OpenDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingStore{Store: fs}
	c, root := newTestCopier(t, counted)
	for v := uint64(1); v <= 5; v++ {
		stage(t, root, "db", v, randomBytes(300, v))
		before := counted.n.Load()
		if err := c.Upload(context.Background(), "db"); err != nil {
			t.Fatal(err)
		}
		got := counted.n.Load() - before
		if v >= 3 && got != 2 {
			t.Errorf("version %d took %d requests, want 2", v, got)
		}
	}
	if got := latestSeq(t, fs, "db"); got != 5 {
		t.Errorf("latest = %d", got)
	}
}

func TestScanPicksUpAbandonedSpools(t *testing.T) {
	s := newMemStore()
	root := t.TempDir()
	old := stage(t, root, "abandoned", 7, randomBytes(2*testChunk, 5))
	past := time.Now().Add(-time.Minute)
	if err := os.Chtimes(filepath.Join(spool.DBsDir(root), "abandoned", "manifest"), past, past); err != nil {
		t.Fatal(err)
	}
	stage(t, root, "fresh", 3, randomBytes(100, 6))
	c := New(Options{SpoolDir: root, Targets: []blob.Store{s}, Interval: 100 * time.Millisecond,
		ScanInterval: 50 * time.Millisecond, ScanMinAge: 10 * time.Second, RateLimit: 1000})
	c.Start(context.Background())
	defer c.Close(context.Background())
	waitFor(t, 5*time.Second, "abandoned spool uploaded", func() bool { return latestSeq(t, s, "abandoned") == old.Seq })
	time.Sleep(200 * time.Millisecond)
	if got := latestSeq(t, s, "fresh"); got != 0 {
		t.Errorf("a fresh spool (a live writer's) was uploaded by the scan")
	}
	st := c.Stats()
	if st.Databases != 2 || st.PendingDatabases != 1 || st.SpoolBytes == 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestBusyElsewhereRetriedLater(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s)
	stage(t, root, "db", 1, randomBytes(100, 7))
	d, _ := spool.Existing(root, "db")
	unlock, err := d.UploadLock(true) // as another process would
	if err != nil {
		t.Fatal(err)
	}
	c.Notify("db")
	time.Sleep(300 * time.Millisecond)
	if latestSeq(t, s, "db") != 0 {
		t.Fatal("uploaded while another process held the upload lock")
	}
	unlock()
	waitFor(t, 2*time.Second, "upload after the lock is released", func() bool { return latestSeq(t, s, "db") == 1 })
}

func TestSharedChunksUploadedOnce(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s)
	data := randomBytes(4*testChunk, 8)
	for i := range 5 {
		key := fmt.Sprintf("copy%d", i)
		stage(t, root, key, 1, data)
		if err := c.Upload(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Stats().ChunksUploaded; got != 3 {
		t.Errorf("%d chunks uploaded for 5 copies of a 4-chunk database, want 3", got)
	}
}

func TestCloseFinishesInFlight(t *testing.T) {
	before := runtime.NumGoroutine()
	s := newMemStore()
	s.setDelay(200 * time.Millisecond)
	root := t.TempDir()
	c := New(Options{SpoolDir: root, Targets: []blob.Store{s}, ScanInterval: time.Hour, RateLimit: 1000})
	c.Start(context.Background())
	stage(t, root, "db", 1, randomBytes(100, 9))
	c.Notify("db")
	waitFor(t, time.Second, "upload started", func() bool { return s.count("all") > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if latestSeq(t, s, "db") != 1 {
		t.Error("in-flight upload did not finish")
	}
	// A slow upload is cancelled at the deadline.
	s.setDelay(10 * time.Second)
	c2 := New(Options{SpoolDir: root, Targets: []blob.Store{s}, ScanInterval: time.Hour, RateLimit: 1000})
	c2.Start(context.Background())
	stage(t, root, "db", 2, randomBytes(100, 10))
	c2.Notify("db")
	waitFor(t, time.Second, "upload started", func() bool { st := c2.Stats(); return st.Running == 1 })
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	start := time.Now()
	err := c2.Close(ctx2)
	if err == nil || !strings.Contains(err.Error(), "cancelled") || time.Since(start) > 2*time.Second {
		t.Fatalf("Close = %v after %v, want cancellation at the deadline", err, time.Since(start))
	}
	// Nothing was recorded as an upload failure.
	d, _ := spool.Existing(root, "db")
	if le, _ := d.ReadLastError(); le != nil {
		t.Errorf("shutdown recorded as a failure: %+v", le)
	}
	waitFor(t, time.Second, "goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
}

func TestNotifyAfterCloseIgnored(t *testing.T) {
	s := newMemStore()
	c := New(Options{SpoolDir: t.TempDir(), Targets: []blob.Store{s}})
	c.Start(context.Background())
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Notify("x")
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestUploadMissingSpool(t *testing.T) {
	c := New(Options{SpoolDir: t.TempDir(), Targets: []blob.Store{newMemStore()}})
	err := c.Upload(context.Background(), "nope")
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Upload = %v", err)
	}
}

func TestKnownSetBounded(t *testing.T) {
	k := newKnownSet(10, time.Hour)
	knows := func(h manifest.Hash) bool { _, ok := k.has(h); return ok }
	var hs []manifest.Hash
	for i := range 100 {
		h := manifest.HashOf([]byte(fmt.Sprint(i)))
		hs = append(hs, h)
		k.add(h, nil)
	}
	if n := k.len(); n > 10 {
		t.Errorf("%d entries, limit 10", n)
	}
	if !knows(hs[99]) || knows(hs[0]) {
		t.Error("recent entry lost or old entry kept")
	}
	k = newKnownSet(10, 100*time.Millisecond)
	k.add(hs[0], nil)
	time.Sleep(120 * time.Millisecond)
	if knows(hs[0]) {
		t.Error("entry trusted past its ttl")
	}
}

// TestRateLimit: the copier limits requests to remote targets to
// RateLimit with bursts of RateBurst, and does not limit targets that are
// all local directories; a wait is cancelled with its context.
func TestRateLimit(t *testing.T) {
	local, err := fileblob.OpenDir(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		targets []blob.Store
		limit   rate.Limit
		burst   int
	}{
		{"remote", []blob.Store{newMemStore()}, 50, 7},
		{"remote and local", []blob.Store{local, newMemStore()}, 50, 7},
		{"local", []blob.Store{local}, rate.Inf, 0},
	} {
		c := New(Options{Targets: tc.targets, RateLimit: 50, RateBurst: 7})
		if got, burst := c.limit.Limit(), c.limit.Burst(); got != tc.limit || (tc.limit != rate.Inf && burst != tc.burst) {
			t.Errorf("%s: limit %v burst %d, want %v %d", tc.name, got, burst, tc.limit, tc.burst)
		}
	}
	l := newLimiter(50, 1)
	if err := waitLimit(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := waitLimit(ctx, l); !errors.Is(err, context.Canceled) {
		t.Errorf("wait on a cancelled context: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	slow := newLimiter(0.001, 1)
	waitLimit(context.Background(), slow)
	if err := waitLimit(ctx, slow); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait beyond the deadline: %v", err)
	}
}

func TestBackoffCappedWithJitter(t *testing.T) {
	c := New(Options{RetryMin: time.Second, RetryMax: 30 * time.Second})
	for n := 1; n <= 100; n++ {
		d := c.backoff(n)
		want := min(time.Second<<min(n-1, 20), 30*time.Second)
		if d < want/2 || d > want {
			t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
		}
	}
}

func TestFailedFlushRetriedInBackground(t *testing.T) {
	s := newMemStore()
	s.setFail(permanentErr)
	c, root := newTestCopier(t, s)
	stage(t, root, "db", 3, randomBytes(100, 11))
	err := c.Upload(context.Background(), "db")
	if err == nil || !errors.Is(err, blob.ErrPermanent) || !strings.Contains(err.Error(), "/data/db.db") {
		t.Fatalf("Upload = %v, want a permanent error naming the database", err)
	}
	s.setFail(nil)
	waitFor(t, 3*time.Second, "background retry", func() bool { return latestSeq(t, s, "db") == 3 })
}

// gateStore lets the first allow chunk uploads through, then cancels the
// flush (as its timeout would) at the next one.
type gateStore struct {
	blob.Store
	allow  int64
	puts   atomic.Int64
	cancel context.CancelFunc
}

func (g *gateStore) Put(ctx context.Context, key string, data []byte) error {
	if strings.HasPrefix(key, "chunks/") && g.puts.Add(1) > g.allow {
		g.cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	return g.Store.Put(ctx, key, data)
}

// TestRegression_FlushTimeoutSaysHowFar: a flush cut short (flush_timeout)
// says how many of the changed chunks it uploaded, and that the rest stays
// spooled; the next flush uploads only the rest.
func TestRegression_FlushTimeoutSaysHowFar(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &gateStore{Store: newMemStore(), allow: 3, cancel: cancel}
	root := t.TempDir()
	c := New(Options{SpoolDir: root, Targets: []blob.Store{g}, ChunkParallelism: 1, RateLimit: 10000, PackBytes: -1})
	stage(t, root, "big", 1, randomBytes(11*testChunk, 1))
	err := c.Upload(ctx, "big")
	if err == nil || !strings.Contains(err.Error(), "3 of 10 changed chunks uploaded") || !strings.Contains(err.Error(), "stays in the spool") {
		t.Fatalf("flush cut short: %v", err)
	}
	g.allow = 1 << 30
	before := g.puts.Load()
	if err := c.Upload(context.Background(), "big"); err != nil {
		t.Fatal(err)
	}
	if n := g.puts.Load() - before; n != 7 {
		t.Errorf("the next flush uploaded %d chunks, want the 7 left", n)
	}
}
