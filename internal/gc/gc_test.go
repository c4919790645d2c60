package gc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// age sets the modification time of every object of s to now - d.
func age(t *testing.T, s *fileblob.Store, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	err := filepath.WalkDir(s.Root(), func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newStore(t *testing.T) *fileblob.Store {
	t.Helper()
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// orphan stores a chunk no manifest references and returns its key.
func orphan(t *testing.T, s blob.Store, b byte) string {
	t.Helper()
	data := []byte(strings.Repeat(string([]byte{b}), 5000))
	key := names.ChunkKey(manifest.HashOf(data).String())
	if err := s.Put(context.Background(), key, manifest.EncodeChunk(data)); err != nil {
		t.Fatal(err)
	}
	return key
}

func exists(t *testing.T, s blob.Store, key string) bool {
	t.Helper()
	ok, err := s.Exists(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestKeepLastAndGrace(t *testing.T) {
	for _, dry := range []bool{false, true} {
		t.Run(map[bool]string{false: "delete", true: "dry-run"}[dry], func(t *testing.T) {
			s := newStore(t)
			f := gctest.Build(t, s, 3, 6, 6, 1)
			_, before := gctest.Missing(t, s)
			age(t, s, 2*time.Hour)
			old := orphan(t, s, 'o')
			age(t, s, 2*time.Hour)
			young := orphan(t, s, 'y')
			sum, err := gc.Run(context.Background(), s, gc.Options{
				Policy: retention.Policy{KeepLast: 2}, Grace: time.Hour, DryRun: dry, TempDir: t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(before) != 0 {
				t.Fatalf("fixture has unreferenced chunks: %v", before)
			}
			if sum.Databases != 3 || sum.ManifestsKept != 6 || sum.ManifestsDeleted != 12 {
				t.Errorf("summary: %d databases, %d manifests kept, %d deleted; want 3, 6, 12", sum.Databases, sum.ManifestsKept, sum.ManifestsDeleted)
			}
			if sum.ChunksInGrace != 1 || sum.MissingChunks != 0 {
				t.Errorf("summary: %d chunks in grace, %d missing; want 1, 0", sum.ChunksInGrace, sum.MissingChunks)
			}
			// Each database has 4 chunks besides chunk 0 and the zero
			// one, chunk 1 shared; versions change chunks 2, 3, 4 in
			// turn, so the 4 versions dropped leave 4 chunks each, plus
			// the old orphan.
			if sum.ChunksDeleted != 3*4+1 {
				t.Errorf("summary: %d chunks deleted, want %d", sum.ChunksDeleted, 3*4+1)
			}
			st := gctest.List(t, s)
			for db, seqs := range st.Versions {
				want := 6
				if !dry {
					want = 2
				}
				if len(seqs) != want || seqs[len(seqs)-1] != st.Latest[db] {
					t.Errorf("%s keeps versions %v (latest %d), want the newest %d", db, seqs, st.Latest[db], want)
				}
			}
			missing, unref := gctest.Missing(t, s)
			if len(missing) != 0 {
				t.Fatalf("missing chunks: %v", missing)
			}
			if !exists(t, s, young) {
				t.Error("a chunk within the grace period was deleted")
			}
			if dry {
				if !exists(t, s, old) || int64(len(unref)) != 2 {
					t.Errorf("dry run deleted something: %d unreferenced left", len(unref))
				}
			} else {
				if exists(t, s, old) || len(unref) != 1 {
					t.Errorf("unreferenced chunks past the grace period remain: %v", unref)
				}
			}
			if n := f.CheckRestores(t, s); n != len(st.Versions)*map[bool]int{false: 2, true: 6}[dry] {
				t.Errorf("checked %d restores", n)
			}
		})
	}
}

// TestGraceZeroCollectsEverything: with no grace and nothing recent, one
// run leaves exactly the latest versions and their chunks.
func TestGraceZeroCollectsEverything(t *testing.T) {
	s := newStore(t)
	f := gctest.Build(t, s, 2, 5, 5, 2)
	orphan(t, s, 'z')
	age(t, s, time.Minute)
	if _, err := gc.Run(context.Background(), s, gc.Options{Policy: retention.Policy{KeepLast: 1}, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	missing, unref := gctest.Missing(t, s)
	if len(missing) != 0 || len(unref) != 0 {
		t.Fatalf("missing %v, unreferenced %v", missing, unref)
	}
	if n := f.CheckRestores(t, s); n != 2 {
		t.Fatalf("%d versions left, want 2", n)
	}
	// A second run finds nothing to do.
	sum, err := gc.Run(context.Background(), s, gc.Options{Policy: retention.Policy{KeepLast: 1}, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if sum.ManifestsDeleted != 0 || sum.ChunksDeleted != 0 {
		t.Fatalf("second run deleted %d manifests, %d chunks", sum.ManifestsDeleted, sum.ChunksDeleted)
	}
}

// reuploading re-puts a chunk just before the collection observes it
// again: a copier uploading the same bytes between the listing and the
// delete.
type reuploading struct {
	*fileblob.Store
	key string
}

func (r *reuploading) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	if key == r.key {
		data, err := r.Get(ctx, key)
		if err != nil {
			return blob.ObjectInfo{}, err
		}
		if err := r.Put(ctx, key, data); err != nil {
			return blob.ObjectInfo{}, err
		}
	}
	return r.Store.Stat(ctx, key)
}

func TestReuploadedCandidateKept(t *testing.T) {
	s := newStore(t)
	key := orphan(t, s, 'r')
	gone := orphan(t, s, 'g')
	age(t, s, 2*time.Hour)
	sum, err := gc.Run(context.Background(), &reuploading{s, key}, gc.Options{Grace: time.Hour, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !exists(t, s, key) || exists(t, s, gone) || sum.ChunksDeleted != 1 {
		t.Fatalf("re-uploaded kept %v, other deleted %v, %d deleted", exists(t, s, key), !exists(t, s, gone), sum.ChunksDeleted)
	}
}

// TestMissingReported: a retained manifest whose chunk is gone is counted.
func TestMissingReported(t *testing.T) {
	s := newStore(t)
	gctest.Build(t, s, 1, 1, 4, 3)
	keys, err := s.List(context.Background(), "chunks/")
	if err != nil || len(keys) == 0 {
		t.Fatal(keys, err)
	}
	if err := s.Delete(context.Background(), keys[0]); err != nil {
		t.Fatal(err)
	}
	sum, err := gc.Run(context.Background(), s, gc.Options{Grace: time.Hour, DryRun: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if sum.MissingChunks != 1 || len(sum.MissingSample) != 1 || "chunks/"+sum.MissingSample[0] != keys[0] {
		t.Fatalf("missing %d %v, want %s", sum.MissingChunks, sum.MissingSample, keys[0])
	}
}

// TestPolicyPerDatabase: PolicyFor overrides the policy of one database.
func TestPolicyPerDatabase(t *testing.T) {
	s := newStore(t)
	f := gctest.Build(t, s, 2, 5, 4, 4)
	age(t, s, time.Minute)
	_, err := gc.Run(context.Background(), s, gc.Options{TempDir: t.TempDir(),
		PolicyFor: func(key string) retention.Policy {
			if key == gctest.Key(0) {
				return retention.Policy{KeepLast: 3}
			}
			return retention.Policy{KeepLast: 1}
		}})
	if err != nil {
		t.Fatal(err)
	}
	st := gctest.List(t, s)
	if a, b := len(st.Versions[gctest.Key(0)]), len(st.Versions[gctest.Key(1)]); a != 3 || b != 1 {
		t.Fatalf("versions kept: %d and %d, want 3 and 1", a, b)
	}
	if missing, unref := gctest.Missing(t, s); len(missing) != 0 || len(unref) != 0 {
		t.Fatalf("missing %v, unreferenced %v", missing, unref)
	}
	f.CheckRestores(t, s)
}

// failingGets fails every manifest read.
type failingGets struct{ *fileblob.Store }

func (f failingGets) Get(ctx context.Context, key string) ([]byte, error) {
	return nil, errors.New("injected read failure")
}

// TestReadFailureStopsBeforeChunks: a manifest that cannot be read stops
// the collection before any chunk is deleted, with the reason.
func TestReadFailureStopsBeforeChunks(t *testing.T) {
	s := newStore(t)
	gctest.Build(t, s, 2, 3, 4, 6)
	orphan(t, s, 'f')
	age(t, s, time.Minute)
	_, before := gctest.Missing(t, s)
	_, err := gc.Run(context.Background(), failingGets{s}, gc.Options{Policy: retention.Policy{KeepLast: 1}, TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "injected read failure") {
		t.Fatalf("Run: %v, want the read failure", err)
	}
	if _, after := gctest.Missing(t, s); len(after) != len(before) {
		t.Fatalf("unreferenced chunks went from %d to %d after a failed run", len(before), len(after))
	}
}
