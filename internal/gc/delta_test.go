package gc_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// TestKeepLastKeepsBaseOfDelta: a kept delta keeps its base manifest,
// which then restores too; versions no kept delta depends on go.
func TestKeepLastKeepsBaseOfDelta(t *testing.T) {
	// Which versions are full (the others are deltas against the
	// previous full one), and which must survive keep-last 1.
	cases := []struct {
		name string
		full []int
		kept []uint64
	}{
		{"one chain", []int{0}, []uint64{1000, 1004}},
		{"rolled over", []int{0, 3}, []uint64{1003, 1004}},
		{"latest full", []int{0, 4}, []uint64{1004}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			f := &gctest.Fixture{Data: map[string]map[uint64][]byte{}}
			data := make([]byte, 6*gctest.ChunkSize)
			var base *manifest.Manifest
			for v := range 5 {
				seq := uint64(1000 + v)
				data[30] = byte(v)
				data[(1+v)*gctest.ChunkSize+7] = byte(v + 1)
				if slices.Contains(tc.full, v) {
					base = f.Put(t, s, gctest.Name(0), seq, data)
				} else {
					f.PutDelta(t, s, gctest.Name(0), seq, data, base)
				}
			}
			age(t, s, 2*time.Hour)
			sum, err := gc.Run(context.Background(), s, gc.Options{
				Policy: retention.Policy{KeepLast: 1}, Grace: 0, TempDir: t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			got := gctest.List(t, s).Versions[gctest.Key(0)]
			if !slices.Equal(got, tc.kept) {
				t.Fatalf("kept versions %v, want %v", got, tc.kept)
			}
			if sum.ManifestsKept != int64(len(tc.kept)) || sum.ManifestsUnreadable != 0 || sum.MissingChunks != 0 {
				t.Fatalf("summary %+v", sum)
			}
			if missing, _ := gctest.Missing(t, s); len(missing) > 0 {
				t.Fatalf("missing chunks after gc: %v", missing)
			}
			if n := f.CheckRestores(t, s); n != len(tc.kept) {
				t.Fatalf("%d versions restored, want %d", n, len(tc.kept))
			}
		})
	}
}
