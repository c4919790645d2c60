package copier

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// storedBytes sums the sizes of the objects in s (the figure
// docs/BENCHMARKS.md quotes), and of those under packs/.
func storedBytes(t testing.TB, s *fileblob.Store) (all, packs int64) {
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

// collectKeepingLatest ages every object of s past the grace period and
// runs a collection that keeps the latest version only; it fails the test
// when a kept manifest then references a missing chunk or pack, or when
// a chunk or pack that none references is left.
func collectKeepingLatest(t *testing.T, s *fileblob.Store) *gc.Summary {
	t.Helper()
	ageObjects(t, s.Root(), 48*time.Hour)
	sum, err := gc.Run(context.Background(), s, gc.Options{Policy: retention.Policy{KeepLast: 1}, Grace: time.Hour, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	missing, unreferenced := gctest.Missing(t, s)
	if sum.MissingChunks != 0 || len(missing) != 0 {
		t.Fatalf("after the collection: %d missing chunks (%v), %v", sum.MissingChunks, sum.MissingSample, missing)
	}
	if len(unreferenced) != 0 {
		t.Errorf("the collection left objects no kept manifest references: %v", unreferenced)
	}
	return sum
}

// unreferencedPacks returns the packs of s that no stored manifest
// references.
func unreferencedPacks(t *testing.T, s blob.Store) map[string]bool {
	t.Helper()
	_, unreferenced := gctest.Missing(t, s)
	out := map[string]bool{}
	for _, k := range unreferenced {
		if strings.HasPrefix(k, "packs/") {
			out[k] = true
		}
	}
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
			sum := collectKeepingLatest(t, s)
			all, packs := storedBytes(t, s)
			stored[tc.name] = all
			left := objects(t, s, "packs/")
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
