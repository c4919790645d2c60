package replica_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/replica"
)

const chunkSize = 64 << 10

// counting wraps a store and counts its requests by kind; gate, when set,
// runs before every chunk GET.
type counting struct {
	blob.Store
	gets, chunkGets, tags, lists atomic.Int64
	// tagged counts conditional GETs (GetTagged), unchanged those
	// answered not-modified (no body).
	tagged, unchanged atomic.Int64
	gate              func(ctx context.Context) error
}

func (c *counting) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets.Add(1)
	if strings.HasPrefix(key, "chunks/") {
		c.chunkGets.Add(1)
		if c.gate != nil {
			if err := c.gate(ctx); err != nil {
				return nil, err
			}
		}
	}
	return c.Store.Get(ctx, key)
}

func (c *counting) Tag(ctx context.Context, key, known string) (string, error) {
	c.tags.Add(1)
	return blob.Tag(ctx, c.Store, key, known)
}

func (c *counting) GetTagged(ctx context.Context, key, known string) ([]byte, string, error) {
	c.tagged.Add(1)
	data, tag, err := blob.GetTagged(ctx, c.Store, key, known)
	if errors.Is(err, blob.ErrNotModified) {
		c.unchanged.Add(1)
	}
	return data, tag, err
}

func (c *counting) List(ctx context.Context, prefix string) ([]string, error) {
	c.lists.Add(1)
	return c.Store.List(ctx, prefix)
}

func (c *counting) requests() int64 {
	return c.gets.Load() + c.tags.Load() + c.lists.Load() + c.tagged.Load()
}

func newStore(t testing.TB) blob.Store {
	t.Helper()
	s, err := fileblob.OpenDir(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const dbName = "h:/db"

var dbKey = names.Key(dbName)

// publish stores data as version seq of dbName (chunks, manifest and, when
// latest, the latest pointer) and returns its manifest.
func publish(t testing.TB, s blob.Store, seq uint64, data []byte, latest bool) *manifest.Manifest {
	t.Helper()
	ctx := context.Background()
	m := &manifest.Manifest{Name: dbName, Seq: seq, CommitTime: time.Unix(0, int64(seq)), PageSize: 4096,
		ChunkSize: chunkSize, Length: int64(len(data)), VersionID: []byte("v")}
	for i := 0; i*chunkSize < len(data); i++ {
		c := data[i*chunkSize : min(len(data), (i+1)*chunkSize)]
		h := manifest.HashOf(c)
		m.Chunks = append(m.Chunks, h)
		if i == 0 {
			m.Chunk0 = c
			m.HeaderHash = manifest.HashOf(c[:100])
			continue
		}
		if err := s.Put(ctx, names.ChunkKey(h.String()), manifest.EncodeChunk(c)); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, names.ManifestKey(dbKey, seq), enc); err != nil {
		t.Fatal(err)
	}
	if latest {
		if err := s.Put(ctx, names.LatestKey(dbKey), enc); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func randomData(seed uint64, chunks int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, chunks*chunkSize)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newManager(t *testing.T, s blob.Store, mutate ...func(*replica.Options)) *replica.Manager {
	t.Helper()
	o := replica.Options{Store: s, CacheDir: filepath.Join(t.TempDir(), "cache"), Hostname: "h", RefreshInterval: time.Hour}
	for _, f := range mutate {
		f(&o)
	}
	m, err := replica.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Wait)
	return m
}

func open(t *testing.T, m *replica.Manager, name, version, at string) *replica.Source {
	t.Helper()
	tg, err := m.Resolve(name, version, at)
	if err != nil {
		t.Fatal(err)
	}
	src, err := m.Open(tg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(src) })
	return src
}

func readAll(t *testing.T, src *replica.Source) []byte {
	t.Helper()
	m := src.HoldCurrent(false, 0)
	defer src.Release(m.Seq)
	var out []byte
	for i := range m.Chunks {
		c, err := src.ReadChunk(m.Seq, i)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		out = append(out, c...)
	}
	src.Wait()
	return out
}

func TestColdOpenIsTwoRequests(t *testing.T) {
	cs := &counting{Store: newStore(t)}
	publish(t, cs.Store, 100, randomData(1, 4), true)
	m := newManager(t, cs)
	src := open(t, m, dbKey, "", "")
	if got := src.Status().Version; got != 100 {
		t.Fatalf("version %d, want 100", got)
	}
	if cs.requests() != 1 || cs.tagged.Load() != 1 {
		t.Fatalf("open made %d requests (%d GET, %d tag, %d LIST, %d tagged GET), want one GET of latest with its tag",
			cs.requests(), cs.gets.Load(), cs.tags.Load(), cs.lists.Load(), cs.tagged.Load())
	}
	// A second connection shares the source: no request.
	open(t, m, dbKey, "", "")
	if cs.requests() != 1 {
		t.Fatalf("second open made %d requests", cs.requests()-1)
	}
}

func TestRefresh(t *testing.T) {
	cs := &counting{Store: newStore(t)}
	publish(t, cs.Store, 100, randomData(1, 3), true)
	m := newManager(t, cs)
	src := open(t, m, dbKey, "", "")
	base := cs.requests()

	// Within the interval (an hour): no request, however many readers.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { src.Current(false) })
	}
	wg.Wait()
	if n := cs.requests() - base; n != 0 {
		t.Fatalf("checks within the interval made %d requests", n)
	}
	// Unchanged: one conditional request, no GET.
	if _, err := src.Current(true); err != nil {
		t.Fatal(err)
	}
	if n, u := cs.requests()-base, cs.unchanged.Load(); n != 1 || u != 1 {
		t.Fatalf("unchanged check: %d requests, %d answered not-modified", n, u)
	}
	// Changed: the new version.
	publish(t, cs.Store, 200, randomData(2, 3), true)
	if mf, err := src.Current(true); err != nil || mf.Seq != 200 {
		t.Fatalf("after a commit: %v, %v", mf.Seq, err)
	}
	// latest going back (a stale copy) never moves the source back.
	publish(t, cs.Store, 150, randomData(3, 3), true)
	if mf, err := src.Current(true); err != nil || mf.Seq != 200 {
		t.Fatalf("after latest went back: version %d, %v; want 200", mf.Seq, err)
	}
	// A failed check keeps the version and is reported, then recovers.
	if err := cs.Store.Delete(context.Background(), names.LatestKey(dbKey)); err != nil {
		t.Fatal(err)
	}
	if mf, err := src.Current(true); err == nil || mf.Seq != 200 || src.Status().LastError == nil {
		t.Fatalf("check of a missing latest: %d, %v, status %v", mf.Seq, err, src.Status().LastError)
	}
	publish(t, cs.Store, 300, randomData(4, 3), true)
	if mf, err := src.Current(true); err != nil || mf.Seq != 300 || src.Status().LastError != nil {
		t.Fatalf("after recovery: %d, %v", mf.Seq, err)
	}
}

func TestPins(t *testing.T) {
	s := newStore(t)
	d1, d2 := randomData(1, 3), randomData(2, 5)
	m1 := publish(t, s, 100, d1, true)
	publish(t, s, 200, d2, true)
	m := newManager(t, s)
	if got := readAll(t, open(t, m, dbKey, "100", "")); !bytes.Equal(got, d1) {
		t.Fatal("version=100 does not read version 100")
	}
	if got := readAll(t, open(t, m, dbKey, "", time.Unix(0, 150).UTC().Format(time.RFC3339Nano))); !bytes.Equal(got, d1) {
		t.Fatal("at= between the versions does not read the first")
	}
	if got := readAll(t, open(t, m, dbKey, "", "")); !bytes.Equal(got, d2) {
		t.Fatal("latest does not read version 200")
	}
	file := filepath.Join(t.TempDir(), "pinned.manifest")
	enc, _ := m1.Encode()
	if err := os.WriteFile(file, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, open(t, m, file, "", "")); !bytes.Equal(got, d1) {
		t.Fatal("the manifest file does not read version 100")
	}
	for _, tc := range []struct{ version, at, want string }{
		{"300", "", "no replica found"},
		{"", "1970-01-01T00:00:00Z", "no replica found"},
		{"x", "", "want a version number"},
		{"1", "2", "at most one"},
	} {
		tg, err := m.Resolve(dbKey, tc.version, tc.at)
		if err == nil {
			_, err = m.Open(tg)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("version=%q at=%q: %v, want %q", tc.version, tc.at, err, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	m := newManager(t, newStore(t))
	for _, tc := range []struct{ name, key, err string }{
		{"verneuil://web-3/srv/app.db", names.Key("web-3:/srv/app.db"), ""},
		{"verneuil:///srv/app.db", names.Key("h:/srv/app.db"), ""},
		{names.Key("web-3:/srv/app.db"), names.Key("web-3:/srv/app.db"), ""},
		{"verneuil://web-3", "", "want verneuil://HOST/ABSOLUTE/PATH"},
		{"app.db", "", "is not a replica name"},
	} {
		tg, err := m.Resolve(tc.name, "", "")
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Resolve(%q) = %v, want error %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || tg.Key != tc.key):
			t.Errorf("Resolve(%q) = %q, %v; want key %q", tc.name, tg.Key, err, tc.key)
		}
	}
	if _, err := m.Open(replica.Target{Key: names.Key("h:/nothing"), What: "the replica of /nothing"}); err == nil ||
		!strings.Contains(err.Error(), "no replica found for the replica of /nothing") || !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("opening a missing replica: %v", err)
	}
}

func TestConcurrentMissesMerge(t *testing.T) {
	release := make(chan struct{})
	var waiting atomic.Int64
	cs := &counting{Store: newStore(t), gate: func(ctx context.Context) error {
		waiting.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}}
	d := randomData(7, 3)
	publish(t, cs.Store, 100, d, true)
	m := newManager(t, cs)
	src := open(t, m, dbKey, "", "")
	mf := src.HoldCurrent(false, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			c, err := src.ReadChunk(mf.Seq, 2)
			if err == nil && !bytes.Equal(c, d[2*chunkSize:]) {
				err = errors.New("wrong data")
			}
			errs <- err
		})
	}
	for waiting.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others join the fetch
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := cs.chunkGets.Load(); n != 1 {
		t.Fatalf("8 concurrent misses on one chunk made %d GETs, want 1", n)
	}
}

func TestReadaheadKeepsManyInFlight(t *testing.T) {
	// Chunk GETs wait until 8 are in flight at once (or 10 s).
	var inFlight, most atomic.Int64
	ready := make(chan struct{})
	var once sync.Once
	cs := &counting{Store: newStore(t)}
	cs.gate = func(ctx context.Context) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			if m := most.Load(); n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if n >= 8 {
			once.Do(func() { close(ready) })
		}
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
		}
		return nil
	}
	d := randomData(9, 64)
	publish(t, cs.Store, 100, d, true)
	m := newManager(t, cs)
	src := open(t, m, dbKey, "", "")
	if got := readAll(t, src); !bytes.Equal(got, d) {
		t.Fatal("a sequential read returned wrong data")
	}
	if most.Load() < 8 {
		t.Fatalf("at most %d chunk GETs in flight during a sequential read, want 8 or more", most.Load())
	}
	if st := m.Stats(); st.Readaheads == 0 || st.ChunkFetches > 63 {
		t.Fatalf("stats %+v: want readahead and at most one fetch per chunk", st)
	}
}

func TestDiskCacheSharedAndVerified(t *testing.T) {
	s := newStore(t)
	d := randomData(3, 10)
	publish(t, s, 100, d, true)
	cache := filepath.Join(t.TempDir(), "cache")
	withCache := func(o *replica.Options) { o.CacheDir = cache }
	a := &counting{Store: s}
	if got := readAll(t, open(t, newManager(t, a, withCache), dbKey, "", "")); !bytes.Equal(got, d) {
		t.Fatal("first reader: wrong data")
	}
	if a.chunkGets.Load() != 9 {
		t.Fatalf("first reader fetched %d chunks, want 9", a.chunkGets.Load())
	}
	// Another process (manager) on the same cache: no chunk from the store.
	b := &counting{Store: s}
	if got := readAll(t, open(t, newManager(t, b, withCache), dbKey, "", "")); !bytes.Equal(got, d) {
		t.Fatal("second reader: wrong data")
	}
	if b.chunkGets.Load() != 0 {
		t.Fatalf("second reader fetched %d chunks from the store, want 0", b.chunkGets.Load())
	}
	// A damaged chunk in the cache is detected, ignored and fetched again.
	damageCachedChunk(t, cache, d[5*chunkSize:6*chunkSize], recordHeaderLen+100)
	c := &counting{Store: s}
	if got := readAll(t, open(t, newManager(t, c, withCache), dbKey, "", "")); !bytes.Equal(got, d) {
		t.Fatal("reader over a damaged cache: wrong data")
	}
	if c.chunkGets.Load() != 1 {
		t.Fatalf("reader over a damaged cache fetched %d chunks, want 1", c.chunkGets.Load())
	}
}

func TestDiskCacheBounded(t *testing.T) {
	s := newStore(t)
	d := randomData(4, 40)
	publish(t, s, 100, d, true)
	cache := filepath.Join(t.TempDir(), "cache")
	const bound = 10 * chunkSize
	m := newManager(t, s, func(o *replica.Options) { o.CacheDir, o.DiskCache = cache, bound })
	if got := readAll(t, open(t, m, dbKey, "", "")); !bytes.Equal(got, d) {
		t.Fatal("wrong data")
	}
	var total int64
	filepath.Walk(cache, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	if total > bound || total == 0 {
		t.Fatalf("disk cache holds %d bytes, bound %d", total, bound)
	}
}

func TestBadChunks(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	d := randomData(5, 4)
	publish(t, s, 100, d, true)
	// Chunk 1 replaced by another chunk's bytes, chunk 2 gone.
	h1 := manifest.HashOf(d[chunkSize : 2*chunkSize])
	h2 := manifest.HashOf(d[2*chunkSize : 3*chunkSize])
	if err := s.Put(ctx, names.ChunkKey(h1.String()), manifest.EncodeChunk(d[3*chunkSize:])); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, names.ChunkKey(h2.String())); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, s)
	src := open(t, m, dbKey, "", "")
	mf := src.HoldCurrent(false, 0)
	if c, err := src.ReadChunk(mf.Seq, 1); !errors.Is(err, manifest.ErrCorrupt) {
		t.Errorf("corrupt chunk: %d bytes, %v; want ErrCorrupt", len(c), err)
	}
	if c, err := src.ReadChunk(mf.Seq, 2); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("missing chunk: %d bytes, %v; want ErrNotFound", len(c), err)
	}
	if c, err := src.ReadChunk(mf.Seq, 3); err != nil || !bytes.Equal(c, d[3*chunkSize:]) {
		t.Errorf("good chunk: %v", err)
	}
}

func TestHungStoreFailsWithinTimeout(t *testing.T) {
	cs := &counting{Store: newStore(t), gate: func(ctx context.Context) error {
		<-ctx.Done() // a store that never answers
		return fmt.Errorf("store: %w", ctx.Err())
	}}
	publish(t, cs.Store, 100, randomData(6, 3), true)
	m := newManager(t, cs, func(o *replica.Options) { o.Timeout = 100 * time.Millisecond })
	src := open(t, m, dbKey, "", "")
	mf := src.HoldCurrent(false, 0)
	if _, err := src.ReadChunk(mf.Seq, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read from a hung store: %v, want a deadline error", err)
	}
}
