package gc_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// TestLatestOnlyVersion: the newest version has no history object (the
// copier published it as latest only, docs/FORMAT.md "History objects").
// A collection keeps its chunks and its delta base, the newest history
// object below it, deletes nothing it must keep, and the version still
// restores, by version and by time.
func TestLatestOnlyVersion(t *testing.T) {
	for _, delta := range []bool{true, false} {
		s := newStore(t)
		ctx := context.Background()
		f := &gctest.Fixture{Data: map[string]map[uint64][]byte{}}
		data := make([]byte, 6*gctest.ChunkSize)
		var base *manifest.Manifest
		for v := range 4 {
			seq := uint64(1000 + v)
			data[30] = byte(v)
			data[(1+v)*gctest.ChunkSize+7] = byte(v + 1)
			if v == 0 {
				base = f.Put(t, s, gctest.Name(0), seq, data)
			} else if delta {
				f.PutDelta(t, s, gctest.Name(0), seq, data, base)
			} else {
				f.Put(t, s, gctest.Name(0), seq, data)
			}
		}
		key := gctest.Key(0)
		// 1003 is latest only.
		if err := s.Delete(ctx, names.ManifestKey(key, 1003)); err != nil {
			t.Fatal(err)
		}
		delete(f.Data[key], 1003)
		age(t, s, 30*24*time.Hour-time.Hour)
		sum, err := gc.Run(ctx, s, gc.Options{
			Policy: retention.Policy{KeepAll: time.Hour, Hourly: time.Hour, Daily: time.Hour}, Grace: 0, TempDir: t.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		got := gctest.List(t, s).Versions[key]
		want := []uint64{1000, 1002} // 1000: base of latest; 1002: newest below latest
		if !delta {
			want = []uint64{1002}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("delta %v: kept %v, want %v", delta, got, want)
		}
		if sum.ManifestsUnreadable != 0 || sum.MissingChunks != 0 {
			t.Fatalf("delta %v: summary %+v", delta, sum)
		}
		if missing, _ := gctest.Missing(t, s); len(missing) > 0 {
			t.Fatalf("delta %v: missing chunks after gc: %v", delta, missing)
		}
		for _, find := range []func() (*manifest.Manifest, error){
			func() (*manifest.Manifest, error) { return restore.Version(ctx, s, key, 1003) },
			func() (*manifest.Manifest, error) { return restore.At(ctx, s, key, time.Now()) },
			func() (*manifest.Manifest, error) { return restore.Latest(ctx, s, key) },
		} {
			m, err := find()
			if err != nil || m.Seq != 1003 {
				t.Fatalf("delta %v: find the latest-only version: %v, %v", delta, m, err)
			}
			for i := range m.Chunks {
				if _, err := restore.Chunk(ctx, s, m, i); err != nil {
					t.Fatalf("delta %v: chunk %d of the latest-only version: %v", delta, i, err)
				}
			}
		}
		if n := f.CheckRestores(t, s); n != len(want) {
			t.Fatalf("delta %v: %d versions restored, want %d", delta, n, len(want))
		}
	}
}
