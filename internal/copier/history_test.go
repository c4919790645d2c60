package copier

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// historyCounter counts the writes of history objects (manifests/SEQ)
// and of latest objects.
type historyCounter struct {
	blob.Store
	history, latest atomic.Int64
}

func (s *historyCounter) Put(ctx context.Context, key string, data []byte) error {
	if strings.Contains(key, "/manifests/") {
		s.history.Add(1)
	}
	return s.Store.Put(ctx, key, data)
}

func (s *historyCounter) PutIf(ctx context.Context, key string, data []byte, v string) error {
	if strings.HasSuffix(key, "/latest") {
		s.latest.Add(1)
	}
	return s.Store.PutIf(ctx, key, data, v)
}

// hasHistory reports whether version seq of key has a history object.
func hasHistory(s blob.Store, key string, seq uint64) bool {
	ok, err := s.Exists(context.Background(), names.ManifestKey(key, seq))
	return err == nil && ok
}

// restoreEquals checks that m restores data.
func restoreEquals(t *testing.T, s blob.Store, m *manifest.Manifest, data []byte) {
	t.Helper()
	f := memFile{make([]byte, m.Length)}
	if err := restore.Write(context.Background(), s, m, &f, 4); err != nil {
		t.Fatalf("restore version %d: %v", m.Seq, err)
	}
	if !bytes.Equal(f.b, data) {
		t.Fatalf("version %d restores other bytes", m.Seq)
	}
}

// TestHistoryInterval: under a steady write load, every version becomes
// latest, but history objects are written about once per interval (at
// most one per interval, plus the first and the last), every latest
// resolves (its delta base is in history), and the last version of the
// burst gets its history object without any further write.
func TestHistoryInterval(t *testing.T) {
	mem := newMemStore()
	s := &historyCounter{Store: mem}
	// Versions must come faster than one per interval for "fewer history
	// objects than versions" to be visible: with 300 ms, under -race on a
	// loaded machine, a version took 570 ms to upload and every one of the
	// 3 went to history. Four intervals of load at 2 s leave room for
	// versions 3 times slower than that.
	const interval = 2 * time.Second
	c, root := newTestCopier(t, s, func(o *Options) {
		o.Interval = 10 * time.Millisecond
		o.HistoryInterval = interval
		o.FullEvery = 8
	})
	ctx := context.Background()
	data := randomBytes(8*testChunk, 7)
	began := time.Now()
	var seq uint64
	for time.Since(began) < 4*interval {
		seq++
		data[27] = byte(seq)
		data[int(seq%7+1)*testChunk+5] ^= 0xff
		stageNamed(t, root, K("h"), "test:h", seq, data)
		c.Notify(K("h"))
		waitFor(t, 10*time.Second, "the version uploaded", func() bool { return latestSeq(t, mem, K("h")) == seq })
		m, err := restore.Latest(ctx, mem, K("h"))
		if err != nil {
			t.Fatalf("latest at version %d: %v", seq, err)
		}
		if m.Seq != seq {
			t.Fatalf("latest holds %d, want %d", m.Seq, seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(began)
	waitFor(t, 10*time.Second, "the last version in history", func() bool { return hasHistory(mem, K("h"), seq) })
	restoreEquals(t, mem, mustVersion(t, mem, K("h"), seq), data)
	hist, latest := s.history.Load(), s.latest.Load()
	max := int64(elapsed/interval) + 2
	t.Logf("%d versions in %v: %d latest writes, %d history objects (at most %d)", seq, elapsed.Round(time.Millisecond), latest, hist, max)
	if latest < int64(seq) {
		t.Fatalf("%d latest writes for %d versions", latest, seq)
	}
	if hist > max || hist >= int64(seq) {
		t.Fatalf("%d history objects for %d versions in %v (interval %v): want at most %d", hist, seq, elapsed, interval, max)
	}
	// Nothing more is written once the history has the last version.
	before := s.history.Load()
	time.Sleep(2 * interval)
	if n := s.history.Load(); n != before {
		t.Fatalf("%d history objects written while the database was quiet", n-before)
	}
}

func mustVersion(t *testing.T, s blob.Store, key string, seq uint64) *manifest.Manifest {
	t.Helper()
	m, err := restore.Version(context.Background(), s, key, seq)
	if err != nil {
		t.Fatalf("version %d: %v", seq, err)
	}
	return m
}

// publishLatestOnly uploads version 1 (with history: the first of the
// process) and then 2 in the background, which the long interval makes
// latest only.
func publishLatestOnly(t *testing.T, c *Copier, root string, s blob.Store, short string) (v1, v2 []byte, t1 time.Time) {
	t.Helper()
	// The copier learns how the store versions objects when it first
	// reads an existing latest; until then it cannot write a delta, and a
	// full latest gets a history object. Another database teaches it.
	warm := K(short + "-warm")
	for seq := uint64(1); seq <= 2; seq++ {
		stageNamed(t, root, warm, "test:"+short+"-warm", seq, randomBytes(2*testChunk, seq))
		c.Notify(warm)
		waitFor(t, 10*time.Second, "the warm-up version", func() bool { return latestSeq(t, s, warm) == seq })
	}
	key := K(short)
	v1 = randomBytes(4*testChunk, 11)
	stageNamed(t, root, key, "test:"+short, 1, v1)
	c.Notify(key)
	waitFor(t, 10*time.Second, "version 1", func() bool { return latestSeq(t, s, key) == 1 })
	t1 = time.Now()
	time.Sleep(5 * time.Millisecond)
	v2 = bytes.Clone(v1)
	v2[27], v2[2*testChunk] = 2, v2[2*testChunk]^1
	stageNamed(t, root, key, "test:"+short, 2, v2)
	c.Notify(key)
	waitFor(t, 10*time.Second, "version 2", func() bool { return latestSeq(t, s, key) == 2 })
	if !hasHistory(s, key, 1) || hasHistory(s, key, 2) {
		t.Fatalf("history of 1: %v (want true), of 2: %v (want false)", hasHistory(s, key, 1), hasHistory(s, key, 2))
	}
	return v1, v2, t1
}

// TestReadersFindLatestOnly: restore by version and by time, and the
// history listing, find a version that is latest only.
func TestReadersFindLatestOnly(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s, func(o *Options) { o.HistoryInterval = time.Hour })
	ctx := context.Background()
	v1, v2, t1 := publishLatestOnly(t, c, root, s, "r")
	restoreEquals(t, s, mustVersion(t, s, K("r"), 2), v2)
	for _, tc := range []struct {
		at   time.Time
		want uint64
		data []byte
	}{{time.Now(), 2, v2}, {t1, 1, v1}} {
		m, err := restore.At(ctx, s, K("r"), tc.at)
		if err != nil {
			t.Fatalf("at %v: %v", tc.at, err)
		}
		if m.Seq != tc.want {
			t.Fatalf("at %v: version %d, want %d", tc.at, m.Seq, tc.want)
		}
		restoreEquals(t, s, m, tc.data)
	}
	seqs, latest, err := restore.History(ctx, s, K("r"))
	if err != nil || latest == nil || len(seqs) != 2 || seqs[1] != 2 {
		t.Fatalf("history: %v, latest %v, err %v; want [1 2]", seqs, latest, err)
	}
	if _, err := restore.Version(ctx, s, K("r"), 3); err == nil {
		t.Fatal("version 3 found; it does not exist")
	}
}

// TestFlushWritesHistory: a synchronous upload (flush) leaves the latest
// version in history, in the process that published it latest only and
// in another one (verneuilctl flush), which checks before writing.
func TestFlushWritesHistory(t *testing.T) {
	for _, other := range []bool{false, true} {
		s := newMemStore()
		c, root := newTestCopier(t, s, func(o *Options) { o.HistoryInterval = time.Hour })
		publishLatestOnly(t, c, root, s, "f")
		flusher := c
		if other {
			flusher = New(Options{SpoolDir: root, Targets: []blob.Store{s}, HistoryInterval: time.Hour})
		}
		if err := flusher.Upload(context.Background(), K("f")); err != nil {
			t.Fatal(err)
		}
		if !hasHistory(s, K("f"), 2) {
			t.Fatalf("other process %v: the flush left version 2 out of history", other)
		}
		puts := s.count("put")
		if err := flusher.Upload(context.Background(), K("f")); err != nil {
			t.Fatal(err)
		}
		if n := s.count("put") - puts; n != 0 {
			t.Fatalf("other process %v: a second flush put %d objects", other, n)
		}
	}
}

// TestCrashBeforeDeferredHistory: a process that published a version as
// latest only dies before its history object is due. Readers still find
// it while it is latest; the next process's first version gets a history
// object, and a point-in-time restore between them finds the version
// before (the lost one was never in history): no reader error.
func TestCrashBeforeDeferredHistory(t *testing.T) {
	s := newMemStore()
	root := t.TempDir()
	opts := Options{SpoolDir: root, Targets: []blob.Store{s}, Interval: 10 * time.Millisecond,
		ScanInterval: -1, HistoryInterval: time.Hour}
	c1 := New(opts)
	c1.Start(context.Background())
	_, v2, t1 := publishLatestOnly(t, c1, root, s, "c")
	// The crash: the copier stops without any flush.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = c1.Close(ctx)
	restoreEquals(t, s, mustVersion(t, s, K("c"), 2), v2)
	t2 := time.Now()
	time.Sleep(5 * time.Millisecond)

	c2 := New(opts)
	c2.Start(context.Background())
	defer c2.Close(context.Background())
	v3 := bytes.Clone(v2)
	v3[27], v3[3*testChunk] = 3, v3[3*testChunk]^1
	stageNamed(t, root, K("c"), "test:c", 3, v3)
	c2.Notify(K("c"))
	waitFor(t, 10*time.Second, "version 3", func() bool { return latestSeq(t, s, K("c")) == 3 })
	if !hasHistory(s, K("c"), 3) {
		t.Fatal("the first version of the new process is not in history")
	}
	m, err := restore.At(context.Background(), s, K("c"), t2)
	if err != nil {
		t.Fatalf("restore at a time between the versions: %v", err)
	}
	if m.Seq != 1 || !m.CommitTime.Before(t1.Add(time.Millisecond)) {
		t.Fatalf("at %v: version %d", t2, m.Seq)
	}
}

// TestTwoCopiersRacingHistory: two copiers (two processes of one host)
// upload the same database while it changes; latest only moves forward,
// every history object and latest restore, and once both flush the last
// version is in history.
func TestTwoCopiersRacingHistory(t *testing.T) {
	s := newMemStore()
	c1, root := newTestCopier(t, s, func(o *Options) { o.HistoryInterval = 50 * time.Millisecond; o.FullEvery = 4 })
	c2 := New(Options{SpoolDir: root, Targets: []blob.Store{s}, Interval: 10 * time.Millisecond,
		ScanInterval: -1, HistoryInterval: 50 * time.Millisecond, FullEvery: 4})
	c2.Start(context.Background())
	defer c2.Close(context.Background())
	data := randomBytes(6*testChunk, 5)
	states := map[uint64][]byte{}
	var mu sync.Mutex
	var last uint64
	for seq := uint64(1); seq <= 60; seq++ {
		data[27] = byte(seq)
		data[int(seq%5+1)*testChunk+1] ^= 0xff
		stageNamed(t, root, K("two"), "test:two", seq, data)
		mu.Lock()
		states[seq] = bytes.Clone(data)
		mu.Unlock()
		c1.Notify(K("two"))
		c2.Notify(K("two"))
		if l := latestSeq(t, s, K("two")); l < last {
			t.Fatalf("latest went back from %d to %d", last, l)
		} else {
			last = l
		}
		time.Sleep(3 * time.Millisecond)
	}
	ctx := context.Background()
	for _, c := range []*Copier{c1, c2} {
		if err := c.Upload(ctx, K("two")); err != nil {
			t.Fatal(err)
		}
	}
	if !hasHistory(s, K("two"), 60) {
		t.Fatal("after both flushed, the last version is not in history")
	}
	seqs, _, err := restore.History(ctx, s, K("two"))
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) >= 60 {
		t.Logf("%d history objects for 60 versions (the uploads coalesced little)", len(seqs))
	}
	for _, seq := range seqs {
		restoreEquals(t, s, mustVersion(t, s, K("two"), seq), states[seq])
	}
}

// K is the store key of the test database called "test:"+short.
func K(short string) string { return names.Key("test:" + short) }
