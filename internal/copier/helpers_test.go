package copier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

const testChunk = 64 << 10

// memStore is an in-memory blob.Store that counts requests, records the
// order of writes, can fail or delay requests, and checks that "latest"
// objects never regress.
type memStore struct {
	mu       sync.Mutex
	objs     map[string][]byte
	calls    map[string]int
	writes   []string // keys written, in order
	times    map[string][]time.Time
	fail     func(op, key string) error
	delay    time.Duration
	regress  []string
	inflight int
	maxIn    int
}

func newMemStore() *memStore {
	return &memStore{objs: map[string][]byte{}, calls: map[string]int{}, times: map[string][]time.Time{}}
}

func (s *memStore) String() string { return "mem://test" }
func (s *memStore) Close() error   { return nil }

func (s *memStore) setFail(f func(op, key string) error) {
	s.mu.Lock()
	s.fail = f
	s.mu.Unlock()
}

func (s *memStore) setDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

func (s *memStore) begin(ctx context.Context, op, key string) error {
	s.mu.Lock()
	s.calls[op]++
	s.calls["all"]++
	fail, delay := s.fail, s.delay
	s.inflight++
	s.maxIn = max(s.maxIn, s.inflight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w", op, key, ctx.Err())
		case <-t.C:
		}
	}
	if fail != nil {
		if err := fail(op, key); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *memStore) get(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[key]
	return b, ok
}

func version(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *memStore) storeLocked(key string, data []byte) {
	if strings.HasSuffix(key, "/latest") {
		if old, ok := s.objs[key]; ok {
			os, err1 := objectSeq(old)
			ns, err2 := objectSeq(data)
			if err1 == nil && err2 == nil && ns < os {
				s.regress = append(s.regress, fmt.Sprintf("%s: %d over %d", key, ns, os))
			}
		}
	}
	s.objs[key] = bytes.Clone(data)
	s.writes = append(s.writes, key)
	s.times[key] = append(s.times[key], time.Now())
}

func (s *memStore) Put(ctx context.Context, key string, data []byte) error {
	if err := s.begin(ctx, "put", key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.storeLocked(key, data)
	return nil
}

func (s *memStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.begin(ctx, "get", key); err != nil {
		return nil, err
	}
	b, ok := s.get(key)
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, blob.ErrNotFound)
	}
	return b, nil
}

func (s *memStore) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if off >= int64(len(b)) {
		return []byte{}, nil
	}
	return b[off:min(int64(len(b)), off+n)], nil
}

func (s *memStore) GetVersioned(ctx context.Context, key string) ([]byte, string, error) {
	if err := s.begin(ctx, "getv", key); err != nil {
		return nil, "", err
	}
	b, ok := s.get(key)
	if !ok {
		return nil, "", fmt.Errorf("get %s: %w", key, blob.ErrNotFound)
	}
	return b, version(b), nil
}

func (s *memStore) PutIf(ctx context.Context, key string, data []byte, ifVersion string) error {
	if err := s.begin(ctx, "putif", key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.objs[key]
	if (ifVersion == "" && ok) || (ifVersion != "" && (!ok || version(old) != ifVersion)) {
		return fmt.Errorf("putif %s: %w", key, blob.ErrPrecondition)
	}
	s.storeLocked(key, data)
	return nil
}

func (s *memStore) Exists(ctx context.Context, key string) (bool, error) {
	if err := s.begin(ctx, "exists", key); err != nil {
		return false, err
	}
	_, ok := s.get(key)
	return ok, nil
}

func (s *memStore) List(ctx context.Context, prefix string) ([]string, error) {
	if err := s.begin(ctx, "list", prefix); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (s *memStore) Delete(ctx context.Context, keys ...string) error {
	if err := s.begin(ctx, "delete", ""); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.objs, k)
	}
	return nil
}

// countingStore counts the requests made to a store.
type countingStore struct {
	blob.Store
	n atomic.Int64
}

func (s *countingStore) Put(ctx context.Context, key string, data []byte) error {
	s.n.Add(1)
	return s.Store.Put(ctx, key, data)
}

func (s *countingStore) PutIf(ctx context.Context, key string, data []byte, v string) error {
	s.n.Add(1)
	return s.Store.PutIf(ctx, key, data, v)
}

func (s *countingStore) GetVersioned(ctx context.Context, key string) ([]byte, string, error) {
	s.n.Add(1)
	return s.Store.GetVersioned(ctx, key)
}

func (s *countingStore) Exists(ctx context.Context, key string) (bool, error) {
	s.n.Add(1)
	return s.Store.Exists(ctx, key)
}

// latestSeq returns the version in the store's "latest" object of key.
func latestSeq(t testing.TB, s blob.Store, key string) uint64 {
	t.Helper()
	b, err := s.Get(context.Background(), names.LatestKey(key))
	if err != nil {
		return 0
	}
	seq, err := objectSeq(b)
	if err != nil {
		t.Fatalf("latest of %s: %v", key, err)
	}
	return seq
}

// objectSeq returns the version a manifest object (full or delta)
// describes.
func objectSeq(b []byte) (uint64, error) {
	m, d, err := manifest.DecodeObject(b)
	switch {
	case err != nil:
		return 0, err
	case d != nil:
		return d.Seq, nil
	}
	return m.Seq, nil
}

// stage publishes, in the spool at root, a manifest of data as version seq
// of key, staging its chunks as the tracker does.
func stage(t testing.TB, root, key string, seq uint64, data []byte) *manifest.Manifest {
	t.Helper()
	return stageNamed(t, root, key, "test:"+key, seq, data)
}

// stageNamed is stage for the database called name (whose key readers
// check: names.Key(name) == key).
func stageNamed(t testing.TB, root, key, name string, seq uint64, data []byte) *manifest.Manifest {
	t.Helper()
	return stageSome(t, root, key, name, seq, data, nil)
}

// stageSome is stageNamed staging only the chunks staged reports true
// for (all when it is nil), as the tracker stages only changed chunks.
func stageSome(t testing.TB, root, key, name string, seq uint64, data []byte, staged func(manifest.Hash) bool) *manifest.Manifest {
	t.Helper()
	d, err := spool.Open(root, key, spool.Info{Path: "/data/" + key + ".db", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	n := manifest.ChunkCount(int64(len(data)), testChunk)
	m := &manifest.Manifest{Name: name, Seq: seq, CommitTime: time.Now(), ChunkSize: testChunk,
		Length: int64(len(data)), Chunks: make([]manifest.Hash, n), VersionID: []byte(fmt.Sprint(seq))}
	unlock, err := d.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for i := range n {
		c := data[i*testChunk : i*testChunk+manifest.ChunkLen(i, m.Length, testChunk)]
		h := manifest.HashOf(c)
		m.Chunks[i] = h
		if i == 0 {
			m.Chunk0 = bytes.Clone(c)
			continue
		}
		if h == manifest.ZeroChunkHash(len(c)) || (staged != nil && !staged(h)) {
			continue
		}
		if err := d.StageChunk(h, c); err != nil {
			t.Fatal(err)
		}
	}
	m.HeaderHash = manifest.HashOf(m.Chunk0[:min(100, len(m.Chunk0))])
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Publish(m, enc); err != nil {
		t.Fatal(err)
	}
	return m
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// newTestCopier returns a started copier on a fresh spool, closed at the
// end of the test.
func newTestCopier(t *testing.T, s blob.Store, mutate ...func(*Options)) (*Copier, string) {
	t.Helper()
	root := t.TempDir()
	// One object per chunk, which these tests count and fail one by
	// one; pack_test.go tests packs.
	opts := Options{SpoolDir: root, Targets: []blob.Store{s}, Interval: 100 * time.Millisecond,
		ScanInterval: -1, RateLimit: 10000, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, PackBytes: -1}
	for _, f := range mutate {
		f(&opts)
	}
	c := New(opts)
	c.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c, root
}

// waitFor polls cond until it holds or the timeout expires.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
