package copier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// copierOn returns a started copier on the spool root with targets,
// closed at the end of the test.
func copierOn(t *testing.T, root string, targets ...blob.Store) *Copier {
	t.Helper()
	c := New(Options{SpoolDir: root, Targets: targets, Interval: 50 * time.Millisecond,
		ScanInterval: -1, RateLimit: 10000, RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	c.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// TestRegression_CopierRecoversPanics: a panic while uploading (here in a
// target's Put, in a chunk goroutine or a background worker) fails that
// upload and is counted; the process survives and the next attempt works.
func TestRegression_CopierRecoversPanics(t *testing.T) {
	s := newMemStore()
	// Phase 1: every chunk upload panics (some run in goroutines);
	// phase 2: the next one panics, in a background worker; then none.
	var phase atomic.Int32
	phase.Store(1)
	s.setFail(func(op, key string) error {
		if op == "put" && strings.HasPrefix(key, "chunks/") && (phase.Load() == 1 || phase.CompareAndSwap(2, 3)) {
			panic("store exploded")
		}
		return nil
	})
	c, root := newTestCopier(t, s)
	stage(t, root, "db", 1, randomBytes(5*testChunk, 1))
	err := c.Upload(context.Background(), "db")
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("Upload with a panicking store: %v, want an error reporting the panic", err)
	}
	first := c.Stats().Panics
	if first < 1 {
		t.Fatalf("Stats().Panics = %d after a panic", first)
	}
	phase.Store(2)
	stage(t, root, "db", 2, randomBytes(5*testChunk, 2))
	c.Notify("db")
	waitFor(t, 10*time.Second, "the background upload after the panic", func() bool { return latestSeq(t, s, "db") == 2 })
	if phase.Load() != 3 {
		t.Fatal("the background upload met no panic")
	}
	if got := c.Stats().Panics; got != first+1 {
		t.Fatalf("Stats().Panics = %d, want %d", got, first+1)
	}
}

// TestRegression_UploadRecordTiedToTargets: the spool's record of the last
// upload is only trusted for the targets that received it. After switching
// to another target with the same spool, the copier never publishes a
// manifest whose unchanged chunks the new target lacks.
func TestRegression_UploadRecordTiedToTargets(t *testing.T) {
	root := t.TempDir()
	a, b := namedStore{newMemStore(), "mem://a"}, namedStore{newMemStore(), "mem://b"}
	data := randomBytes(6*testChunk, 3)
	m1 := stage(t, root, "db", 1, data)
	c1 := copierOn(t, root, a)
	if err := c1.Upload(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	// Another copier, with another target, sees the version as not
	// uploaded there.
	cb := copierOn(t, root, b)
	cb.Scan(context.Background())
	if st, ok := cb.DBStat("db"); !ok || !st.Pending {
		t.Fatalf("the scan does not see the database as pending for the other target: %+v", st)
	}
	// The next version changes one chunk; the tracker stages only it.
	copy(data[2*testChunk:], randomBytes(testChunk, 4))
	m2 := stage(t, root, "db", 2, data)
	d, err := spool.Existing(root, "db")
	if err != nil {
		t.Fatal(err)
	}
	old := map[manifest.Hash]bool{}
	for _, h := range m1.Chunks {
		old[h] = true
	}
	for _, h := range m2.Chunks {
		if old[h] {
			if err := d.RemoveChunk(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	c2 := copierOn(t, root, b) // the target changed, the spool stayed
	err = c2.Upload(context.Background(), "db")
	if err == nil {
		for i, h := range m2.Chunks[1:] {
			if _, ok := b.get(names.ChunkKey(h.String())); !ok {
				t.Fatalf("upload to the new target succeeded, but chunk %d of version 2 is not there", i+1)
			}
		}
		return
	}
	if !errors.Is(err, ErrChunkLost) {
		t.Fatalf("Upload to the new target: %v", err)
	}
	if _, ok := b.get(names.LatestKey("db")); ok {
		t.Fatal("a manifest was published in the new target without its chunks")
	}
	if up, _, _ := d.Uploaded(); up != nil {
		t.Fatal("the record of the upload to the old target still stands: a rescan would not restage its chunks")
	}
	if !d.RescanWanted() {
		t.Fatal("no rescan requested")
	}
}

// namedStore is a memStore with its own name.
type namedStore struct {
	*memStore
	name string
}

func (s namedStore) String() string { return s.name }

// ignoringStore is a memStore behind a proxy that strips conditional
// headers: PutIf overwrites unconditionally.
type ignoringStore struct{ *memStore }

func (s ignoringStore) PutIf(ctx context.Context, key string, data []byte, _ string) error {
	return s.memStore.Put(ctx, key, data)
}

// TestRegression_IgnoredConditionalWrites: two spools publish one replica
// name to a store that ignores conditional writes. The copier detects it,
// says so in its stats, and never moves "latest" backwards by trusting a
// condition the store does not enforce.
func TestRegression_IgnoredConditionalWrites(t *testing.T) {
	s := ignoringStore{newMemStore()}
	rootA, rootB := t.TempDir(), t.TempDir()
	ca, cb := copierOn(t, rootA, s), copierOn(t, rootB, s)
	for _, seq := range []uint64{10, 12} { // A learns the store's version scheme
		stage(t, rootA, "db", seq, dbBytes(3*testChunk, seq, uint32(seq)))
		if err := ca.Upload(context.Background(), "db"); err != nil {
			t.Fatal(err)
		}
	}
	stage(t, rootB, "db", 20, dbBytes(3*testChunk, 20, 20))
	if err := cb.Upload(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	stage(t, rootA, "db", 15, dbBytes(3*testChunk, 15, 15))
	if err := ca.Upload(context.Background(), "db"); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("Upload of a version below B's: %v, want ErrSuperseded", err)
	}
	if got := latestSeq(t, s, "db"); got != 20 {
		t.Fatalf("latest holds version %d, want 20 (it moved backwards; regressions: %v)", got, s.regress)
	}
	if got := ca.Stats().NoConditionalWrites; len(got) != 1 || got[0] != s.String() {
		t.Fatalf("Stats().NoConditionalWrites = %q, want the target", got)
	}
	if keys, _ := s.List(context.Background(), ""); len(keys) == 0 || strings.Contains(strings.Join(keys, " "), "probe") {
		t.Fatalf("probe objects left in the store: %q", keys)
	}
	// A store that enforces conditions is not reported.
	good := newMemStore()
	cg, root := newTestCopier(t, good)
	stage(t, root, "db", 1, randomBytes(testChunk, 1))
	if err := cg.Upload(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	if got := cg.Stats().NoConditionalWrites; len(got) != 0 {
		t.Fatalf("Stats().NoConditionalWrites = %q for a store that enforces them", got)
	}
}

// TestRegression_UndecodableLatestKept: a "latest" object that does not
// decode (damage, or a format this build does not read) is never
// overwritten; the upload fails and says why.
func TestRegression_UndecodableLatestKept(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s)
	junk := []byte("not a manifest")
	if err := s.Put(context.Background(), names.LatestKey("db"), junk); err != nil {
		t.Fatal(err)
	}
	stage(t, root, "db", 5, randomBytes(2*testChunk, 5))
	err := c.Upload(context.Background(), "db")
	if err == nil || !strings.Contains(err.Error(), "latest") {
		t.Fatalf("Upload over an undecodable latest: %v, want an error about it", err)
	}
	if got, _ := s.get(names.LatestKey("db")); string(got) != string(junk) {
		t.Fatal("the undecodable latest was overwritten")
	}
}

// TestConditionalProbeRefusedDoesNotBlock: a target that refuses the
// probe's key (a policy allowing only the replica prefixes, say) still
// gets replicated.
func TestConditionalProbeRefusedDoesNotBlock(t *testing.T) {
	s := newMemStore()
	s.setFail(func(op, key string) error {
		if strings.HasPrefix(key, probePrefix) {
			return fmt.Errorf("%s %s: access denied: %w", op, key, blob.ErrPermanent)
		}
		return nil
	})
	c, root := newTestCopier(t, s)
	for seq := uint64(1); seq <= 3; seq++ {
		stage(t, root, "db", seq, randomBytes(2*testChunk, seq))
		if err := c.Upload(context.Background(), "db"); err != nil {
			t.Fatalf("upload %d: %v", seq, err)
		}
	}
	if got := latestSeq(t, s, "db"); got != 3 {
		t.Fatalf("latest = %d, want 3", got)
	}
	if got := c.Stats().NoConditionalWrites; len(got) != 0 {
		t.Fatalf("Stats().NoConditionalWrites = %q for an unprobed target", got)
	}
}
