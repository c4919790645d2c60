package restore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// putVersions stores one empty-database manifest per (seq, commit time)
// pair, both in nanoseconds since the epoch, and returns a store counting
// GETs.
func putVersions(t *testing.T, key string, versions [][2]int64) *countingGets {
	t.Helper()
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, v := range versions {
		m := &manifest.Manifest{Name: "h:/db", Seq: uint64(v[0]), CommitTime: time.Unix(0, v[1]),
			ChunkSize: 65536, VersionID: []byte(fmt.Sprint(v[0]))}
		enc, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(context.Background(), names.ManifestKey(key, m.Seq), enc); err != nil {
			t.Fatal(err)
		}
	}
	return &countingGets{Store: s}
}

type countingGets struct {
	*fileblob.Store
	gets int
}

func (c *countingGets) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets++
	return c.Store.Get(ctx, key)
}

// After a clock was stepped back (or a database moved to a host whose
// clock is behind), versions are numbered above their commit times: --at
// must pick by commit time, not skip every version numbered above T.
func TestRegression_AtSelectsByCommitTime(t *testing.T) {
	key := names.Key("h:/db")
	const s1 = int64(time.Second)
	// At 200 s the clock is stepped back to 150 s: later versions are
	// numbered from the last one, above their commit times.
	s := putVersions(t, key, [][2]int64{{100 * s1, 100 * s1}, {200 * s1, 200 * s1},
		{200*s1 + 1, 150 * s1}, {200*s1 + 2, 160 * s1}, {200*s1 + 3, 170 * s1}})
	for _, c := range []struct{ at, want int64 }{{155, 200*s1 + 1}, {165, 200*s1 + 2}, {500, 200*s1 + 3},
		{100, 100 * s1}, {199, 200*s1 + 3}} {
		m, err := At(context.Background(), s, key, time.Unix(c.at, 0))
		if err != nil {
			t.Fatalf("At(%d s): %v", c.at, err)
		}
		if int64(m.Seq) != c.want {
			t.Errorf("At(%d s) = version %d (committed %v), want %d", c.at, m.Seq, m.CommitTime.Unix(), c.want)
		}
	}
	if _, err := At(context.Background(), s, key, time.Unix(99, 0)); err == nil {
		t.Error("At before the first commit found a version")
	}
}

// With sane clocks (commit times increase with versions), --at costs a
// few GETs per doubling of the versions after T, not one per version.
func TestAtCostLogarithmic(t *testing.T) {
	key := names.Key("h:/db")
	var vs [][2]int64
	for i := range int64(300) {
		vs = append(vs, [2]int64{(1000 + i) * int64(time.Second), (1000+i)*int64(time.Second) + 1000})
	}
	s := putVersions(t, key, vs)
	m, err := At(context.Background(), s, key, time.Unix(1010, 0))
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 1009*uint64(time.Second) {
		t.Errorf("At = %d, want version 1009 s", m.Seq)
	}
	if s.gets > 30 {
		t.Errorf("At fetched %d manifests of 300", s.gets)
	}
}

// vanishing lists, on its first List, one manifest key that is not (any
// more) there: a copier renumbering a version deletes the object put under
// the old number, and a GC deletes old versions.
type vanishing struct {
	*countingGets
	ghost  string
	listed int
}

func (v *vanishing) List(ctx context.Context, prefix string) ([]string, error) {
	keys, err := v.countingGets.List(ctx, prefix)
	v.listed++
	if err == nil && v.listed == 1 {
		keys = append(keys, v.ghost)
	}
	return keys, err
}

// TestRegression_AtVersionVanishedDuringSearch: a version listed by
// --at's search but deleted before it is read (renumbered by a copier
// after the store's latest, or removed by a GC) does not fail the restore:
// the search lists the versions again.
func TestRegression_AtVersionVanishedDuringSearch(t *testing.T) {
	key := names.Key("h:/db")
	const s1 = int64(time.Second)
	s := &vanishing{countingGets: putVersions(t, key, [][2]int64{{100 * s1, 100 * s1}, {200 * s1, 200 * s1}}),
		ghost: names.ManifestKey(key, 300*uint64(s1))}
	m, err := At(context.Background(), s, key, time.Unix(250, 0))
	if err != nil {
		t.Fatalf("At with a version deleted during the search: %v", err)
	}
	if int64(m.Seq) != 200*s1 {
		t.Fatalf("At = version %d, want %d", m.Seq, 200*s1)
	}
}
