package copier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// Repacking against a hostile or failing store: whatever a read, a stat
// or a PUT of the repacking returns, the version is published and
// restores byte for byte; the failure is counted; once the store heals,
// repacking resumes. What a failed repack left is collected by gc.

// hostileStore wraps a store: reads of pack ranges can fail or be
// damaged, PUTs can fail, and stats can lie, each while its hook is set.
type hostileStore struct {
	blob.Store
	mu      sync.Mutex
	onRange func(key string, b []byte) ([]byte, error)
	onPut   func(key string) error
	onStat  func(key string, info blob.ObjectInfo) blob.ObjectInfo
}

func (h *hostileStore) set(f func(h *hostileStore)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func (h *hostileStore) hooks() (func(string, []byte) ([]byte, error), func(string) error, func(string, blob.ObjectInfo) blob.ObjectInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.onRange, h.onPut, h.onStat
}

func (h *hostileStore) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b, err := h.Store.GetRange(ctx, key, off, n)
	if f, _, _ := h.hooks(); err == nil && f != nil && strings.HasPrefix(key, "packs/") {
		return f(key, bytes.Clone(b))
	}
	return b, err
}

func (h *hostileStore) Put(ctx context.Context, key string, data []byte) error {
	if _, f, _ := h.hooks(); f != nil {
		if err := f(key); err != nil {
			return err
		}
	}
	return h.Store.Put(ctx, key, data)
}

func (h *hostileStore) PutIf(ctx context.Context, key string, data []byte, v string) error {
	if _, f, _ := h.hooks(); f != nil {
		if err := f(key); err != nil {
			return err
		}
	}
	return h.Store.PutIf(ctx, key, data, v)
}

func (h *hostileStore) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	st, ok := h.Store.(blob.Stater)
	if !ok {
		return blob.ObjectInfo{}, errors.New("cannot stat")
	}
	info, err := st.Stat(ctx, key)
	if _, _, f := h.hooks(); err == nil && f != nil {
		info = f(key, info)
	}
	return info, err
}

// smallSteps rewrites 1 to 3 chunks per version: no version of its own
// sends a pack, so every pack PUT is a repack's.
func (w *churn) smallSteps(n int) {
	for v := range n {
		w.rewrite(1 + v%3)
		w.commit()
	}
}

// TestRepack_HostileReads: while reading pack records for a repack fails
// (an error, a flipped byte, a truncated range, or a store that keeps
// failing past the retries), every version is still published, with the
// old locations, and restores byte for byte from the real store; each
// failure is counted. Once reads are sound again, versions are repacked.
func TestRepack_HostileReads(t *testing.T) {
	cases := map[string]func(key string, b []byte) ([]byte, error){
		"error": func(string, []byte) ([]byte, error) {
			return nil, fmt.Errorf("injected: %w", blob.ErrPermanent)
		},
		"transient error": func(string, []byte) ([]byte, error) {
			return nil, errors.New("injected: connection reset")
		},
		"flipped byte": func(_ string, b []byte) ([]byte, error) {
			if len(b) > 0 {
				b[len(b)/2] ^= 0x10
			}
			return b, nil
		},
		"not found": func(key string, _ []byte) ([]byte, error) {
			return nil, fmt.Errorf("injected: %s: %w", key, blob.ErrNotFound)
		},
		"truncated": func(_ string, b []byte) ([]byte, error) { return b[:len(b)/2], nil },
		"empty":     func(string, []byte) ([]byte, error) { return []byte{}, nil },
	}
	for what, hook := range cases {
		t.Run(what, func(t *testing.T) {
			mem := newMemStore()
			h := &hostileStore{Store: mem}
			h.set(func(h *hostileStore) { h.onRange = hook })
			w := newChurn(t, h, "test:repack-hostile", func(o *Options) { o.MaxAttempts = 2 })
			for v := range 20 {
				w.step(v)
				w.checkLatest(mem)
			}
			st := w.c.Stats()
			if st.Repacks != 0 || st.RepackErrors == 0 {
				t.Fatalf("while reads fail: %d repacks, %d repack errors; want none and some", st.Repacks, st.RepackErrors)
			}
			h.set(func(h *hostileStore) { h.onRange = nil })
			for v := range 15 {
				w.step(v)
			}
			w.s = mem
			w.checkAll()
			if st := w.c.Stats(); st.Repacks == 0 {
				t.Error("no repack once reads were sound again")
			}
		})
	}
}

// TestRepack_FailedPutLeavesOnlyGarbage: the PUT of a repacked pack
// fails in the second target after it succeeded in the first (or the
// copier died there): the version is published with the old locations
// and restores from both targets; once the store heals versions are
// repacked; a collection of the first target then deletes the pack the
// failed repack left, and every pack left is referenced.
func TestRepack_FailedPutLeavesOnlyGarbage(t *testing.T) {
	fb, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	second := newMemStore()
	h := &hostileStore{Store: second}
	w := newChurn(t, fb, "test:repack-put", func(o *Options) { o.Targets = []blob.Store{fb, h}; o.MaxAttempts = 2 })
	var failedMu sync.Mutex
	failed := map[string]bool{}
	h.set(func(h *hostileStore) {
		h.onPut = func(key string) error {
			if strings.HasPrefix(key, "packs/") {
				failedMu.Lock()
				failed[key] = true
				failedMu.Unlock()
				return errors.New("injected: pack PUT failed")
			}
			return nil
		}
	})
	w.smallSteps(40)
	h.set(func(h *hostileStore) { h.onPut = nil })
	if st := w.c.Stats(); st.RepackErrors == 0 || st.Repacks != 0 || len(failed) == 0 {
		t.Fatalf("while pack PUTs fail: %d repack errors, %d repacks, %d packs refused", st.RepackErrors, st.Repacks, len(failed))
	}
	for _, s := range []blob.Store{fb, second} {
		w.checkLatest(s)
	}
	for v := range 20 {
		w.step(v)
	}
	if st := w.c.Stats(); st.Repacks == 0 {
		t.Fatal("no repack once PUTs succeed again")
	}
	orphans := 0
	for k := range unreferencedPacks(t, fb) {
		if failed[k] {
			orphans++
		}
	}
	if orphans == 0 {
		t.Fatal("no pack of a failed repack left in the first target: the test does not test garbage")
	}
	w.checkAll()
	collectKeepingLatest(t, fb)
	for _, s := range []blob.Store{fb, second} {
		w.checkLatest(s)
	}
}

// TestRepack_KilledBeforeManifest: the copier repacks, puts the new pack,
// and dies before the manifest naming it is published (here: every
// manifest write fails). A new process uploads the version from the
// spool, byte for byte, and a collection leaves no pack unreferenced.
func TestRepack_KilledBeforeManifest(t *testing.T) {
	ctx := context.Background()
	fb, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileStore{Store: fb}
	w := newChurn(t, h, "test:repack-killed")
	for v := range 10 {
		w.step(v)
	}
	before := w.c.Stats().Repacks
	// Small versions until one is repacked and then refused.
	var (
		putMu sync.Mutex
		put   []string
	)
	h.set(func(h *hostileStore) {
		h.onPut = func(key string) error {
			if strings.HasPrefix(key, "dbs/") {
				return fmt.Errorf("injected: %w", blob.ErrPermanent)
			}
			putMu.Lock()
			put = append(put, key)
			putMu.Unlock()
			return nil
		}
	})
	died := false
	for range 40 {
		w.rewrite(2)
		w.stage()
		if err := w.c.Upload(ctx, w.key); err == nil {
			t.Fatal("upload succeeded while manifest writes fail")
		}
		if w.c.Stats().Repacks > before {
			died = true
			break
		}
	}
	if !died {
		t.Fatal("no version was repacked")
	}
	orphan := ""
	unreferenced := unreferencedPacks(t, fb)
	for _, k := range put {
		if unreferenced[k] {
			orphan = k
		}
	}
	if orphan == "" {
		t.Fatalf("no repacked pack in the store unreferenced (put %v)", put)
	}
	h.set(func(h *hostileStore) { h.onPut = nil })
	c2 := New(Options{SpoolDir: w.root, Targets: []blob.Store{h}, RateLimit: 10000, PackBytes: repackPackBytes})
	defer c2.Close(ctx)
	if err := c2.Upload(ctx, w.key); err != nil {
		t.Fatalf("upload by a new process: %v", err)
	}
	w.remember()
	w.checkLatest(fb)
	collectKeepingLatest(t, fb)
	w.checkLatest(fb)
}

// TestRepack_LyingStat: a new process (no pack size known) asks the
// store for the sizes of the packs, and the store lies: every pack is
// 64 MiB (all of them look mostly dead), or 1 byte (smaller than the
// records the manifest places in it). Repacking stays within its bound
// per upload and every version restores byte for byte.
func TestRepack_LyingStat(t *testing.T) {
	for what, size := range map[string]int64{"huge": manifest.MaxPackSize, "tiny": 1} {
		t.Run(what, func(t *testing.T) {
			ctx := context.Background()
			fb, err := fileblob.OpenDir(t.TempDir(), true)
			if err != nil {
				t.Fatal(err)
			}
			w := newChurn(t, fb, "test:repack-stat", func(o *Options) { o.RepackThreshold = -1 })
			for v := range 20 {
				w.step(v)
			}
			h := &hostileStore{Store: fb}
			h.set(func(h *hostileStore) {
				h.onStat = func(_ string, info blob.ObjectInfo) blob.ObjectInfo { info.Size = size; return info }
			})
			const bound = 3 * testChunk
			c2 := New(Options{SpoolDir: w.root, Targets: []blob.Store{h}, RateLimit: 10000, PackBytes: repackPackBytes, RepackBytes: bound})
			defer c2.Close(ctx)
			w.c, w.s = c2, h
			var last int64
			for v := range 20 {
				w.step(v)
				st := c2.Stats()
				if got := st.RepackedBytes - last; got > bound {
					t.Fatalf("version %d re-sent %d bytes, over the bound of %d", w.seq, got, bound)
				}
				last = st.RepackedBytes
			}
			st := c2.Stats()
			t.Logf("%s sizes: %d repacks, %d bytes re-sent, %d errors", what, st.Repacks, st.RepackedBytes, st.RepackErrors)
			if what == "huge" && st.Repacks == 0 {
				t.Error("no repack although every pack looked mostly dead")
			}
			w.checkAll()
		})
	}
}

// TestRepack_OffWithoutPacks: a process configured without packs
// (pack_bytes 0) never repacks, even the sparse packs an earlier
// configuration left: it would send packs that the stores' other readers
// may not read.
func TestRepack_OffWithoutPacks(t *testing.T) {
	mem := newMemStore()
	w := newChurn(t, mem, "test:repack-nopacks", func(o *Options) { o.RepackThreshold = -1 })
	for v := range 10 {
		w.step(v)
	}
	packs := len(objects(t, mem, "packs/"))
	c2 := New(Options{SpoolDir: w.root, Targets: []blob.Store{mem}, RateLimit: 10000, PackBytes: -1})
	defer c2.Close(context.Background())
	w.c = c2
	for v := range 30 {
		w.step(v)
	}
	if st := c2.Stats(); st.Repacks != 0 || st.RepackErrors != 0 {
		t.Errorf("without packs: %d repacks, %d errors", st.Repacks, st.RepackErrors)
	}
	if n := len(objects(t, mem, "packs/")); n != packs {
		t.Errorf("%d packs after versions without packs, want the %d of before", n, packs)
	}
	w.checkAll()
}

// TestRepack_LatestOnlyWithInline: with history objects every so often
// (versions in between are latest only and carry their few new chunks
// inline), a repacked version still becomes a full base with its history
// object, its inline chunks stored first; the latest restores byte for
// byte after every version, and every history object too.
func TestRepack_LatestOnlyWithInline(t *testing.T) {
	mem := newMemStore()
	w := newChurn(t, mem, "test:repack-inline", func(o *Options) { o.HistoryInterval = time.Hour })
	// Background uploads (a flush always writes history).
	inline := 0
	commit := func() {
		t.Helper()
		w.stage()
		w.remember()
		w.c.Notify(w.key)
		waitFor(t, 20*time.Second, fmt.Sprintf("version %d uploaded", w.seq), func() bool { return latestSeq(t, mem, w.key) == w.seq })
		w.checkLatest(mem)
		b, _ := mem.get(names.LatestKey(w.key))
		if m, d, err := manifest.DecodeObject(b); err == nil && ((m != nil && len(m.Inline) > 0) || (d != nil && len(d.Inline) > 0)) {
			inline++
		}
	}
	for v := range 60 {
		w.rewrite([]int{6, 2, 9, 1, 5, 12}[v%6])
		commit()
		if v%5 == 0 {
			w.rewrite(1) // a one-chunk version: inline
			commit()
		}
	}
	st := w.c.Stats()
	if st.Repacks == 0 {
		t.Fatal("no repack")
	}
	kept := 0
	for seq := range w.want {
		if _, ok := mem.get(names.ManifestKey(w.key, seq)); ok {
			checkStored(t, mem, w.key, seq, w.version(seq))
			kept++
		}
	}
	t.Logf("%d repacks; %d of %d versions have a history object; %d latest objects carried inline chunks", st.Repacks, kept, len(w.want), inline)
	if inline == 0 {
		t.Error("no latest object carried inline chunks: the test does not exercise them")
	}
	if kept >= len(w.want) {
		t.Error("every version has a history object: the test does not exercise latest-only versions")
	}
}

// statCounter counts the stats of each key.
type statCounter struct {
	blob.Store
	mu sync.Mutex
	n  map[string]int
}

func (s *statCounter) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	s.mu.Lock()
	s.n[key]++
	s.mu.Unlock()
	return s.Store.(blob.Stater).Stat(ctx, key)
}

// TestRepack_MissingPack: a pack the latest version references is gone
// from the store (a damaged target). A new process finds it missing when
// it asks for its size: it logs and counts it once, asks once, never
// reads it, and keeps publishing versions that place its chunks where
// they were (a restore fails on them with not found, never returns other
// bytes), while it repacks the other packs.
func TestRepack_MissingPack(t *testing.T) {
	ctx := context.Background()
	fb, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	w := newChurn(t, fb, "test:repack-missing", func(o *Options) { o.RepackThreshold = -1 })
	for v := range 12 {
		w.step(v)
	}
	m := w.latest()
	gone := m.PackNames()[0] // any pack of it
	if err := fb.Delete(ctx, names.PackKey(gone.String())); err != nil {
		t.Fatal(err)
	}
	sc := &statCounter{Store: fb, n: map[string]int{}}
	c2 := New(Options{SpoolDir: w.root, Targets: []blob.Store{sc}, RateLimit: 10000, PackBytes: repackPackBytes})
	defer c2.Close(ctx)
	w.c = c2
	for range 20 {
		w.rewrite(1) // small versions: the gone pack's chunks mostly stay
		w.commit()
	}
	st := c2.Stats()
	if st.RepackErrors != 1 {
		t.Errorf("%d repack errors, want the missing pack counted once", st.RepackErrors)
	}
	if n := sc.n[names.PackKey(gone.String())]; n != 1 {
		t.Errorf("the missing pack was asked about %d times, want once", n)
	}
	m = w.latest()
	still := false
	for _, p := range m.PackNames() {
		still = still || p == gone
	}
	if !still {
		t.Fatal("the latest version no longer references the missing pack: the test does not test it")
	}
	f := memFile{make([]byte, m.Length)}
	if err := restore.Write(ctx, fb, m, &f, 4); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("restore of a version whose pack is missing: %v, want not found", err)
	}
	t.Logf("%d repacks beside the missing pack", st.Repacks)
}

// TestRepack_SlowStoreGivesUp: reads of packs become slower than half
// the publish deadline (gc_grace/4): the repack gives up there and the
// version is published with its old locations, instead of the attempt
// outlasting the deadline and starting again (with the same slow repack)
// for as long as the store stays slow.
func TestRepack_SlowStoreGivesUp(t *testing.T) {
	const grace = 4 * time.Second // repacks give up after 500 ms
	mem := newMemStore()
	h := &hostileStore{Store: mem}
	w := newChurn(t, h, "test:repack-slow", func(o *Options) { o.GCGrace = grace })
	for v := range 10 {
		w.step(v)
	}
	h.set(func(h *hostileStore) {
		h.onRange = func(_ string, b []byte) ([]byte, error) {
			time.Sleep(grace / 8 * 6 / 5)
			return b, nil
		}
	})
	before := w.c.Stats()
	for v := range 15 {
		w.step(v) // fails the test if the upload does not end
	}
	st := w.c.Stats()
	if st.RepackErrors == before.RepackErrors || st.Repacks != before.Repacks {
		t.Fatalf("with slow reads: %d repack errors and %d repacks more; want some errors and no repack",
			st.RepackErrors-before.RepackErrors, st.Repacks-before.Repacks)
	}
	h.set(func(h *hostileStore) { h.onRange = nil })
	for v := range 15 {
		w.step(v)
	}
	if w.c.Stats().Repacks == st.Repacks {
		t.Error("no repack once reads were fast again")
	}
	w.s = mem
	w.checkAll()
}

// TestRepack_FailureDuringConcurrentCommit: while an upload repacks, the
// application commits again (the next version is staged as the new pack
// goes up), and then the upload fails before its manifest is published.
// The next upload publishes the newer version, byte for byte; the pack
// of the failed repack is garbage that a collection deletes, and nothing
// a kept manifest references is missing.
func TestRepack_FailureDuringConcurrentCommit(t *testing.T) {
	fb, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileStore{Store: fb}
	w := newChurn(t, h, "test:repack-concurrent")
	for v := range 10 {
		w.step(v)
	}
	var (
		mu        sync.Mutex
		committed bool
		failed    bool
	)
	h.set(func(h *hostileStore) {
		h.onPut = func(key string) error {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case strings.HasPrefix(key, "packs/") && !committed:
				// A commit lands while the repacked pack goes up.
				committed = true
				w.rewrite(2)
				w.stage()
			case committed && !failed && strings.HasPrefix(key, "dbs/"):
				failed = true
				return fmt.Errorf("injected: %w", blob.ErrPermanent)
			}
			return nil
		}
	})
	for range 30 {
		w.rewrite(1)
		w.stage()
		err := w.c.Upload(context.Background(), w.key)
		mu.Lock()
		done := failed
		mu.Unlock()
		if done {
			if err == nil {
				t.Fatal("the upload succeeded although its manifest write failed")
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		w.remember()
	}
	if !failed {
		t.Fatal("no repack happened to fail: the test does not test it")
	}
	h.set(func(h *hostileStore) { h.onPut = nil })
	if err := w.c.Upload(context.Background(), w.key); err != nil {
		t.Fatal(err)
	}
	w.remember()
	w.checkAll()
	collectKeepingLatest(t, fb)
	w.checkLatest(fb)
}
