package copier

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// TestFlushEndsDuringCommitStorm: a synchronous upload (a flush) must end
// once a version at least as new as the staged one at its start is in the
// store, even when every chunk it uploads is followed by a commit that
// changes every chunk of the database. Before, each commit's spool GC
// deleted the staged chunks of the manifest being uploaded, the upload
// restarted on the newest manifest, and the flush only ended once the
// commits stopped (or at its deadline: "the staged manifest keeps
// changing").
func TestFlushEndsDuringCommitStorm(t *testing.T) {
	const (
		chunks   = 8
		maxStorm = 64 // commits the storm makes at most
	)
	for _, par := range []int{1, DefaultChunkParallelism} {
		t.Run(map[int]string{1: "sequential", DefaultChunkParallelism: "parallel"}[par], func(t *testing.T) {
			s := newMemStore()
			c, root := newTestCopier(t, s, func(o *Options) { o.ChunkParallelism = par })
			const key = "storm"
			first := stage(t, root, key, 1, randomBytes(chunks*testChunk, 1))

			var mu sync.Mutex
			seq := first.Seq
			storming := true
			s.setFail(func(op, k string) error {
				if op != "put" || !strings.HasPrefix(k, "chunks/") {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				if !storming || seq >= first.Seq+maxStorm {
					return nil
				}
				// A commit rewrites the whole database.
				seq++
				stage(t, root, key, seq, randomBytes(chunks*testChunk, seq))
				return nil
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := c.Upload(ctx, key)
			cancel()
			mu.Lock()
			storming = false
			during := seq - first.Seq
			mu.Unlock()
			if err != nil {
				t.Fatalf("flush during a commit storm: %v", err)
			}
			if during >= maxStorm {
				t.Fatalf("the flush ended only once the commits stopped (%d commits during it)", during)
			}
			if got := latestSeq(t, s, key); got < first.Seq {
				t.Fatalf("latest is version %d, want at least %d (the state at the flush's start)", got, first.Seq)
			}
			if _, err := os.Stat(filepath.Join(spoolPath(root, key), spool.PinFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the pin outlived the upload: %v", err)
			}
			// The version uploaded restores: every chunk it references is
			// in the store.
			checkComplete(t, s, key)
			checkNoStrayChunks(t, root, key)
		})
	}
}

// checkComplete fails unless every chunk the store's latest manifest of
// key references (but the inline first one and zero chunks) is stored.
func checkComplete(t *testing.T, s *memStore, key string) {
	t.Helper()
	m := latestManifest(t, s, key)
	for i, h := range m.Chunks {
		if i == 0 || h == manifest.ZeroChunkHash(manifest.ChunkLen(i, m.Length, m.ChunkSize)) {
			continue
		}
		if _, ok := s.get(names.ChunkKey(h.String())); !ok {
			t.Errorf("version %d: chunk %d (%s) is not in the store", m.Seq, i, h)
		}
	}
}

// TestFlushWaitingEndsWhenAnotherUploadReachesIt: a flush waiting for
// another upload of the database (here: the in-process upload mutex held,
// as by a background upload) ends as soon as a state at least as new as
// the one staged at its start is recorded uploaded, without an upload of
// its own; it does not end for an older record; and when its deadline
// expires it says what it waited for.
func TestFlushWaitingEndsWhenAnotherUploadReachesIt(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s)
	const key = "waiting"
	old := stage(t, root, key, 1, randomBytes(4*testChunk, 1))
	oldEnc, err := old.Encode()
	if err != nil {
		t.Fatal(err)
	}
	goal := stage(t, root, key, 2, randomBytes(4*testChunk, 2))
	goalEnc, err := goal.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := spool.Existing(root, key)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	st := c.getLocked(key)
	c.mu.Unlock()
	st.up.Lock() // another upload of this database is in progress

	// An older record does not end the wait: the deadline does, and the
	// error says what the flush waited for.
	if err := d.MarkUploadedTo(oldEnc, c.targetIDs()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = c.Upload(ctx, key)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "waiting for version 2 (staged at the start) or a later one; the last uploaded is 1") {
		t.Fatalf("flush past its deadline: %v, want what it waited for", err)
	}

	// The other upload records the goal: the flush ends, with no request.
	flushWhileOtherUploads(t, c, s, d, goalEnc)
	st.up.Unlock()
}

// flushWhileOtherUploads flushes key while another uploader (which the
// caller holds the lock of) records enc uploaded: the flush must end with
// no store request.
func flushWhileOtherUploads(t *testing.T, c *Copier, s *memStore, d *spool.Dir, enc []byte) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done <- c.Upload(ctx, d.Key)
	}()
	if err := d.MarkUploadedTo(enc, c.targetIDs()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("flush after another uploader reached its goal: %v", err)
	}
	if n := s.count("all"); n != 0 {
		t.Errorf("the flush made %d store requests; another uploader did the work", n)
	}
}

// TestFlushWaitingForAnotherProcess: the same, with the upload in
// progress in another process (the spool's upload lock held through
// another open file description, as another process holds it).
func TestFlushWaitingForAnotherProcess(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s)
	const key = "elsewhere"
	goal := stage(t, root, key, 7, randomBytes(3*testChunk, 7))
	goalEnc, err := goal.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := spool.Existing(root, key)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := d.UploadLock(true)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	flushWhileOtherUploads(t, c, s, d, goalEnc)
}

// checkNoStrayChunks fails if a staged chunk of key is not referenced by
// its staged manifest (the pin of an upload kept it and nothing removed it).
func checkNoStrayChunks(t *testing.T, root, key string) {
	t.Helper()
	d, err := spool.Existing(root, key)
	if err != nil {
		t.Fatal(err)
	}
	cur, _, err := d.Manifest()
	if err != nil || cur == nil {
		t.Fatalf("staged manifest: %v", err)
	}
	live := map[string]bool{}
	for _, h := range cur.Chunks {
		live[h.String()] = true
	}
	staged, err := d.StagedChunks()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range staged {
		if !live[h] {
			t.Errorf("staged chunk %s is referenced by no staged manifest", h)
		}
	}
}

// TestFlushFailingDuringCommitStorm: two faults interleaved, a store that
// fails the upload of the pinned manifest while commits continue: the flush
// fails (saying so), leaves no chunk only its pin kept, and the next flush
// (store back) ends with a complete version.
func TestFlushFailingDuringCommitStorm(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s, func(o *Options) { o.MaxAttempts = 1 })
	const key = "stormfail"
	stage(t, root, key, 1, randomBytes(6*testChunk, 1))
	var mu sync.Mutex
	seq, puts := uint64(1), 0
	s.setFail(func(op, k string) error {
		if op != "put" || !strings.HasPrefix(k, "chunks/") {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		puts++
		if seq < 20 {
			seq++
			stage(t, root, key, seq, randomBytes(6*testChunk, seq))
		}
		if puts == 3 {
			return errors.New("store down")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Upload(ctx, key); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Fatalf("flush with the store failing: %v", err)
	}
	checkNoStrayChunks(t, root, key)
	if err := c.Upload(ctx, key); err != nil {
		t.Fatalf("flush with the store back: %v", err)
	}
	checkComplete(t, s, key)
	checkNoStrayChunks(t, root, key)
}
