package copier

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// storedBytes sums the sizes of the objects in s (the figure
// docs/BENCHMARKS.md quotes), and of those under packs/.
func storedBytes(t *testing.T, s *fileblob.Store) (all, packs int64) {
	t.Helper()
	err := s.Walk(context.Background(), "", func(page []blob.ObjectInfo) error {
		for _, o := range page {
			all += o.Size
			if strings.HasPrefix(o.Key, "packs/") {
				packs += o.Size
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all, packs
}

// ageAll makes every object of s look d old.
func ageAll(t *testing.T, s *fileblob.Store, d time.Duration) {
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

// keptPacks returns the packs that the manifests left in s reference
// (history objects, their delta bases, latest).
func keptPacks(t *testing.T, s blob.Store, key string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	out := map[string]bool{}
	add := func(m *manifest.Manifest) {
		for _, p := range m.PackNames() {
			out[names.PackKey(p.String())] = true
		}
	}
	seqs, err := restore.Versions(ctx, s, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range seqs {
		m, err := restore.Version(ctx, s, key, seq)
		if err != nil {
			t.Fatalf("kept version %d: %v", seq, err)
		}
		add(m)
	}
	m, err := restore.Latest(ctx, s, key)
	if err != nil {
		t.Fatal(err)
	}
	add(m)
	return out
}

// TestRepack_GCAndStoredBytes runs the churn workload on a directory
// target with repacking at the default threshold and off, then a
// collection that keeps only the latest version (everything aged past
// the grace period): with repacking, the packs the old versions alone
// referenced are deleted, every pack left is referenced, and the latest
// version and the versions kept restore byte for byte. It prints the
// stored bytes of both runs (go test -run TestRepack_GCAndStoredBytes -v
// ./internal/copier/), which docs/BENCHMARKS.md quotes.
func TestRepack_GCAndStoredBytes(t *testing.T) {
	const versions = 80
	stored := map[string]int64{}
	for _, tc := range []struct {
		name      string
		threshold int
	}{{"default", 0}, {"off", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := fileblob.OpenDir(t.TempDir(), true)
			if err != nil {
				t.Fatal(err)
			}
			w := newChurn(t, s, "test:repack-gc-"+tc.name, func(o *Options) { o.RepackThreshold = tc.threshold })
			for v := range versions {
				w.step(v)
			}
			beforeAll, beforePacks := storedBytes(t, s)
			packsBefore := len(objects(t, s, "packs/"))
			ageAll(t, s, 48*time.Hour)
			sum, err := gc.Run(ctx, s, gc.Options{Policy: retention.Policy{KeepLast: 1}, Grace: time.Hour, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if sum.MissingChunks != 0 {
				t.Fatalf("collection found %d missing chunks (%v)", sum.MissingChunks, sum.MissingSample)
			}
			all, packs := storedBytes(t, s)
			stored[tc.name] = all
			left := objects(t, s, "packs/")
			kept := keptPacks(t, s, w.key)
			for _, p := range left {
				if !kept[p] && tc.name == "default" {
					t.Errorf("%s left by the collection is referenced by no kept manifest", p)
				}
			}
			m := w.latest()
			w.checkLatest(s)
			seqs, err := restore.Versions(ctx, s, w.key)
			if err != nil {
				t.Fatal(err)
			}
			for _, seq := range seqs {
				checkStored(t, s, w.key, seq, w.version(seq))
			}
			st := w.c.Stats()
			t.Logf("repacking %s: before gc %d bytes stored (%d in %d packs); after gc %d bytes stored (%d in %d packs, %d deleted), latest references %d bytes of packs; database %d bytes; uploaded %d bytes of new chunks and %d of manifests, %d repacks re-sent %d bytes",
				tc.name, beforeAll, beforePacks, packsBefore, all, packs, len(left), sum.PacksDeleted,
				referencedPackBytes(t, s, m), repackChunks*testChunk, st.BytesUploaded, st.ManifestBytes, st.Repacks, st.RepackedBytes)
			if tc.name == "default" && sum.PacksDeleted == 0 {
				t.Error("the collection deleted no pack: the repacked ones should have aged out")
			}
		})
	}
	if stored["default"] == 0 || stored["off"] == 0 {
		return // a subtest failed
	}
	t.Logf("stored bytes after the workload and gc: %d with repacking (default threshold), %d without (threshold 0): %.2f×",
		stored["default"], stored["off"], float64(stored["off"])/float64(stored["default"]))
	if stored["default"] >= stored["off"] {
		t.Errorf("repacking did not reduce the bytes stored after gc: %d with, %d without", stored["default"], stored["off"])
	}
}
