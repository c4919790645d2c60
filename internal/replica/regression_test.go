package replica_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/replica"
)

// version= must be a whole decimal number: fmt.Sscan took the leading
// digits of "12abc" (version 12), "1e3" as 1 and "0x10" as 16, opening a
// version the user did not name.
func TestRegression_SnapshotVersionGarbageRejected(t *testing.T) {
	m := newManager(t, newStore(t))
	for _, v := range []string{"12abc", "1e3", "0x10", " 7", "7 ", "5 6", "+5", "-1", "99999999999999999999999"} {
		if _, err := m.Resolve(dbKey, v, ""); err == nil || !strings.Contains(err.Error(), "want a version number") {
			t.Errorf("version=%q: %v, want a rejection", v, err)
		}
	}
	if tg, err := m.Resolve(dbKey, "12", ""); err != nil || tg.Version != 12 {
		t.Errorf("version=12: %+v, %v", tg, err)
	}
}

// A FIFO (or any non-regular file) at a pack's place in the disk cache
// hung the reader forever: the cache opened it for reading, which blocks
// until a writer appears. It must count as a miss, with the chunk fetched
// from the store.
func TestRegression_SnapshotDiskCacheFifoDoesNotHang(t *testing.T) {
	s := newStore(t)
	d := randomData(7, 4)
	publish(t, s, 100, d, true)
	cache := filepath.Join(t.TempDir(), "cache")
	withCache := func(o *replica.Options) { o.CacheDir = cache }
	// Where a pack of another process would be.
	dir := filepath.Join(cache, "packs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const h = "1-0000000000000000.pack"
	if err := syscall.Mkfifo(filepath.Join(dir, h), 0o600); err != nil {
		t.Fatal(err)
	}
	src := open(t, newManager(t, s, withCache), dbKey, "", "")
	done := make(chan []byte)
	go func() {
		m := src.HoldCurrent(false, 0)
		defer src.Release(m.Seq)
		c, err := src.ReadChunk(m.Seq, 2)
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	select {
	case got := <-done:
		if !bytes.Equal(got, d[2*chunkSize:3*chunkSize]) {
			t.Fatal("wrong data for the chunk behind the FIFO")
		}
	case <-time.After(20 * time.Second): // a hang guard, not a timing assertion
		// Unblock the reader so that the test can end.
		if f, err := os.OpenFile(filepath.Join(dir, h), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("reading a chunk whose cache file is a FIFO hung")
	}
}

// Resolving a local path that is a FIFO hung: the check for a saved
// manifest opened it for reading. A FIFO is not a manifest file; the name
// then resolves to this host's replica of that path.
func TestRegression_SnapshotResolveFifoDoesNotHang(t *testing.T) {
	m := newManager(t, newStore(t))
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		tg  replica.Target
		err error
	}
	done := make(chan result)
	go func() {
		tg, err := m.Resolve(p, "", "")
		done <- result{tg, err}
	}()
	select {
	case r := <-done:
		if r.err != nil || r.tg.ManifestFile != "" || r.tg.Key == "" {
			t.Fatalf("Resolve(FIFO) = %+v, %v; want this host's replica key", r.tg, r.err)
		}
	case <-time.After(20 * time.Second): // a hang guard, not a timing assertion
		if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("Resolve of a FIFO path hung")
	}
}

// at= as unix seconds took NaN, Inf and values past year 2262 (the range
// of a time in nanoseconds) as some arbitrary instant in 1677, opening
// "no replica as of 1677" instead of saying the time is bad.
func TestRegression_SnapshotAtGarbageRejected(t *testing.T) {
	m := newManager(t, newStore(t))
	for _, at := range []string{"NaN", "nan", "Inf", "-Inf", "+Inf", "1e300", "1e12", "-1e12"} {
		if tg, err := m.Resolve(dbKey, "", at); err == nil || !strings.Contains(err.Error(), "bad time") {
			t.Errorf("at=%q: %v (as of %v), want a rejection", at, err, tg.At)
		}
	}
	tg, err := m.Resolve(dbKey, "", "1764057600.5")
	if err != nil || !tg.At.Equal(time.Unix(1764057600, 5e8)) {
		t.Errorf("at=1764057600.5: %v, %v", tg.At, err)
	}
}

// countingHandler counts the log records at Warn and above.
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// A cache_dir that cannot be written (here a regular file) logged one
// warning per chunk read: a scan flooded the log. The reads work, from the
// store, and the failure is logged once in a while, not per chunk.
func TestRegression_SnapshotUnwritableCacheDirDoesNotFloodLog(t *testing.T) {
	s := newStore(t)
	d := randomData(9, 40)
	publish(t, s, 100, d, true)
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var warns atomic.Int64
	m := newManager(t, s, func(o *replica.Options) {
		o.CacheDir = notDir
		o.Logger = slog.New(countingHandler{&warns})
	})
	if got := readAll(t, open(t, m, dbKey, "", "")); !bytes.Equal(got, d) {
		t.Fatal("wrong data over an unwritable cache")
	}
	if n := warns.Load(); n < 1 || n > 2 {
		t.Errorf("%d warnings for 39 chunks not cached, want 1 (the first failure)", n)
	}
}

// panicOnce panics in the first Get of a chunk object (a store client's
// bug), then behaves.
type panicOnce struct {
	blob.Store
	done atomic.Bool
}

func (p *panicOnce) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, "chunks/") && p.done.CompareAndSwap(false, true) {
		panic("store client bug")
	}
	return p.Store.Get(ctx, key)
}

// A panic while fetching a chunk left the chunk's fetch registered as in
// flight: every later reader of that chunk waited for it forever.
func TestRegression_SnapshotPanicInFetchEndsTheFlight(t *testing.T) {
	s := newStore(t)
	d := randomData(9, 4)
	publish(t, s, 100, d, true)
	ps := &panicOnce{Store: s}
	src := open(t, newManager(t, ps, func(o *replica.Options) { o.CacheDir = "" }), dbKey, "", "")
	m := src.HoldCurrent(false, 0)
	defer src.Release(m.Seq)
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("the store's panic did not reach the caller")
			}
		}()
		src.ReadChunk(m.Seq, 2)
	}()
	done := make(chan error, 1)
	go func() {
		c, err := src.ReadChunk(m.Seq, 2)
		if err == nil && !bytes.Equal(c, d[2*chunkSize:3*chunkSize]) {
			err = errors.New("wrong data")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a read of the chunk after a panicked fetch hangs")
	}
}
