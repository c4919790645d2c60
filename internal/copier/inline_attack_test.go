package copier

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// TestInline_TwoTargetsPacksFailuresRestart: inline chunks with packs on
// (a version over the inline bound packs its new chunks) and two targets,
// one of which fails about a third of its writes (the other a tenth),
// while commits keep coming and the copier dies halfway (another starts on
// the same spool). In both targets, every latest restores the state staged
// under its number and no stored manifest lacks a chunk; after a flush
// every history object of both restores its state.
func TestInline_TwoTargetsPacksFailuresRestart(t *testing.T) {
	a := namedStore{newMemStore(), "mem://a"}
	b := namedStore{newMemStore(), "mem://b"}
	targets := []namedStore{a, b}
	mutate := func(o *Options) {
		o.Targets = []blob.Store{a, b}
		o.PackBytes = 0               // default: packs on
		o.HistoryInterval = time.Hour // history objects by flushes below
		o.Interval = 10 * time.Millisecond
	}
	db := newInlineDB(t, a, "two", mutate)
	states := map[uint64][]byte{db.seq: append([]byte(nil), db.data...)}
	var mu sync.Mutex
	fr := rand.New(rand.NewPCG(3, 4))
	failer := func(every int) func(op, key string) error {
		return func(op, key string) error {
			mu.Lock()
			defer mu.Unlock()
			if (op == "put" || op == "putif") && fr.IntN(every) == 0 {
				return fmt.Errorf("%s %s: injected: %w", op, key, errors.New("503 slow down"))
			}
			return nil
		}
	}
	a.setFail(failer(10))
	b.setFail(failer(3))
	inlined, packed := 0, 0
	check := func() {
		t.Helper()
		for _, s := range targets {
			m, err := restore.Latest(context.Background(), s, K("two"))
			if err != nil {
				t.Fatalf("%s: latest: %v", s, err)
			}
			if len(m.Inline) > 0 {
				inlined++
			}
			if len(m.Locs) > 0 {
				packed++
			}
			want, ok := states[m.Seq]
			if !ok {
				t.Fatalf("%s: latest is version %d, which was never staged", s, m.Seq)
			}
			restoreEquals(t, s, m, want)
			if missing, _ := gctest.Missing(t, s); len(missing) > 0 {
				t.Fatalf("%s at latest %d: stored manifests lack chunks: %v", s, m.Seq, missing)
			}
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 40 {
		if i == 20 {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = db.c.Close(ctx) // dies mid-stream
			c2, _ := newTestCopier(t, a, mutate, func(o *Options) { o.SpoolDir = db.root })
			db.c = c2
		}
		db.seq++
		db.data[27] = byte(db.seq)
		n := 1 + r.IntN(2)
		if i%5 == 4 {
			n = 6 // over the inline bound: packed
		}
		for range n {
			c := 1 + r.IntN(7)
			db.data[c*testChunk+r.IntN(testChunk)] ^= byte(i + 1)
		}
		stageNamed(t, db.root, K("two"), "test:two", db.seq, db.data)
		states[db.seq] = append([]byte(nil), db.data...)
		db.c.Notify(K("two"))
		time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
		if i%6 == 5 {
			// A flush: its history object (a new delta base). A short
			// history interval instead wrote every version to history
			// under -race on a loaded machine (each check outlasted it):
			// no latest carried inline chunks. The injected failures may
			// make it fail.
			if err := db.c.Upload(context.Background(), K("two")); err != nil {
				t.Logf("flush after version %d: %v", db.seq, err)
			}
		}
		check()
	}
	t.Logf("latest carried inline chunks %d times, pack locations %d times (of 80 reads)", inlined, packed)
	if inlined == 0 || packed == 0 {
		t.Fatal("the test exercised no inline or no packed latest")
	}
	a.setFail(nil)
	b.setFail(nil)
	if err := db.c.Upload(context.Background(), K("two")); err != nil {
		t.Fatal(err)
	}
	check()
	for _, s := range targets {
		if !hasHistory(s, K("two"), db.seq) {
			t.Fatalf("%s: the flush left the last version out of history", s)
		}
		seqs, _, err := restore.History(context.Background(), s, K("two"))
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range seqs {
			restoreEquals(t, s, mustVersion(t, s, K("two"), seq), states[seq])
		}
		if len(s.regress) > 0 {
			t.Fatalf("%s: latest went back: %v", s, s.regress)
		}
	}
}

// TestInline_GCConcurrentWithCopier: collections with a short grace period
// (the copier told the same, so its known-chunk cache and publish deadline
// shrink with it, and chunks age past it during the test) run back to back
// while commits keep coming, some inline, some over the bound, with
// history objects every 100 ms. Between collections, the store's latest
// restores its state and no stored manifest lacks a chunk.
func TestInline_GCConcurrentWithCopier(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several grace periods")
	}
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	const grace = 2 * time.Second
	db := newInlineDB(t, s, "gcc", func(o *Options) {
		o.GCGrace = grace
		o.HistoryInterval = 100 * time.Millisecond
	})
	states := map[uint64][]byte{db.seq: append([]byte(nil), db.data...)}
	var gcMu sync.Mutex // held by a collection; the checks take it
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var gcErr error
	var runs, deleted int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			gcMu.Lock()
			sum, err := gc.Run(ctx, s, gc.Options{Policy: retention.Policy{KeepLast: 1}, Grace: grace, TempDir: t.TempDir()})
			gcMu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					gcErr = err
				}
				return
			}
			runs++
			deleted += sum.ChunksDeleted
		}
	}()
	r := rand.New(rand.NewPCG(11, 12))
	deadline := time.Now().Add(4 * grace)
	for i := 0; time.Now().Before(deadline); i++ {
		n := 1 + r.IntN(2)
		if i%6 == 5 {
			n = 6
		}
		changed := make([]int, n)
		for j := range changed {
			changed[j] = 1 + r.IntN(7)
		}
		db.commit(changed...)
		states[db.seq] = append([]byte(nil), db.data...)
		time.Sleep(time.Duration(r.IntN(60)) * time.Millisecond)
		gcMu.Lock()
		m, err := restore.Latest(context.Background(), s, K("gcc"))
		if err != nil {
			gcMu.Unlock()
			t.Fatalf("latest: %v", err)
		}
		restoreEquals(t, s, m, states[m.Seq])
		missing, _ := gctest.Missing(t, s)
		gcMu.Unlock()
		if len(missing) > 0 {
			t.Fatalf("at latest %d: stored manifests lack chunks: %v", m.Seq, missing)
		}
	}
	// Then a one-chunk commit (inline), a flush (its history object) and
	// an idle spell longer than the grace period, collections running.
	// (A commit right after a history object is latest only.)
	for try := 0; ; try++ {
		db.commit(3)
		states[db.seq] = append([]byte(nil), db.data...)
		if len(db.latest().Inline) > 0 {
			break
		}
		if try == 20 {
			t.Fatal("no one-chunk commit was published with its chunk inline")
		}
	}
	if err := db.c.Upload(context.Background(), K("gcc")); err != nil {
		t.Fatal(err)
	}
	if !hasHistory(s, K("gcc"), db.seq) || len(db.latest().Inline) == 0 {
		t.Fatal("the flush did not leave a history object beside a latest carrying a chunk inline")
	}
	idle := time.Now().Add(3 * grace / 2)
	for time.Now().Before(idle) {
		time.Sleep(grace / 4)
		gcMu.Lock()
		missing, _ := gctest.Missing(t, s)
		gcMu.Unlock()
		if len(missing) > 0 {
			t.Fatalf("idle at version %d: stored manifests lack chunks: %v", db.seq, missing)
		}
	}
	cancel()
	wg.Wait()
	if gcErr != nil {
		t.Fatal(gcErr)
	}
	t.Logf("%d versions, %d collections deleted %d chunks", db.seq, runs, deleted)
	if deleted == 0 {
		t.Fatal("no collection deleted a chunk: the test exercised nothing")
	}
}

// TestInline_FlushedHistoryThenCollection: a one-chunk commit is
// published as latest only with its chunk inline; a flush (or the end of
// its history interval) writes its history object, storing the chunk as a
// chunk object, and leaves latest as it is (the database is idle). A
// collection a day later must not delete that chunk object, which the
// history object references; the version still restores from history
// after the next commit moves latest on.
func TestInline_FlushedHistoryThenCollection(t *testing.T) {
	ctx := context.Background()
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	db := newInlineDB(t, s, "flushgc")
	db.commit(2)
	m := db.latest()
	if len(m.Inline) == 0 {
		t.Fatal("the one-chunk version carries no chunk inline")
	}
	want := append([]byte(nil), db.data...)
	if err := db.c.Upload(ctx, K("flushgc")); err != nil {
		t.Fatal(err)
	}
	if !hasHistory(s, K("flushgc"), db.seq) {
		t.Fatal("the flush wrote no history object")
	}
	if l := db.latest(); len(l.Inline) == 0 {
		t.Fatal("latest no longer carries the chunk inline: the test exercises nothing")
	}
	ageObjects(t, s.Root(), 48*time.Hour)
	if _, err := gc.Run(ctx, s, gc.Options{Grace: 24 * time.Hour, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if missing, _ := gctest.Missing(t, s); len(missing) > 0 {
		t.Fatalf("after a collection, stored manifests lack chunks: %v", missing)
	}
	seq := db.seq
	db.commit(2)
	db.latest()
	restoreEquals(t, s, mustVersion(t, s, K("flushgc"), seq), want)
}

// ageObjects sets the modification time of every file under root to now
// minus d.
func ageObjects(t *testing.T, root string, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestInline_AtLandsOnEveryVersionKind: versions of every kind (history
// objects full and delta, latest only with chunks inline, over the inline
// bound) follow each other; a point-in-time restore at each commit time,
// while later versions keep coming, finds a version committed at or
// before that time, at least as new as the newest history object then,
// that restores the state staged under its number.
func TestInline_AtLandsOnEveryVersionKind(t *testing.T) {
	s := newMemStore()
	db := newInlineDB(t, s, "at") // history objects by flushes below
	ctx := context.Background()
	states := map[uint64][]byte{db.seq: append([]byte(nil), db.data...)}
	type point struct {
		at      time.Time
		seq     uint64
		history uint64 // newest history object then
	}
	var points []point
	inlined := 0
	r := rand.New(rand.NewPCG(21, 22))
	for i := range 30 {
		n := 1 + r.IntN(2)
		if i%7 == 6 {
			n = 6
		}
		changed := make([]int, n)
		for j := range changed {
			changed[j] = 1 + r.IntN(7)
		}
		m := db.commit(changed...)
		states[db.seq] = append([]byte(nil), db.data...)
		if len(db.latest().Inline) > 0 {
			inlined++
		}
		if i%4 == 3 {
			// A flush: its history object (a new delta base).
			if err := db.c.Upload(ctx, K("at")); err != nil {
				t.Fatal(err)
			}
		}
		seqs, _, err := restore.History(ctx, s, K("at"))
		if err != nil {
			t.Fatal(err)
		}
		var hist uint64
		for _, q := range seqs {
			if hasHistory(s, K("at"), q) {
				hist = max(hist, q)
			}
		}
		points = append(points, point{m.CommitTime, db.seq, hist})
		time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
		// Every earlier point, as the store holds it now.
		for _, p := range points {
			got, err := restore.At(ctx, s, K("at"), p.at)
			if err != nil {
				t.Fatalf("at version %d's commit time (now %d): %v", p.seq, db.seq, err)
			}
			if got.Seq > p.seq || got.Seq < p.history {
				t.Fatalf("at version %d's commit time (history then %d): got version %d", p.seq, p.history, got.Seq)
			}
			restoreEquals(t, s, got, states[got.Seq])
		}
	}
	if inlined == 0 {
		t.Fatal("no latest carried chunks inline: the test exercised nothing new")
	}
}
