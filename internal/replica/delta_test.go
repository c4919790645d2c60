package replica_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// publishDelta stores data as version seq of dbName, its manifest a delta
// against base, and makes it latest.
func publishDelta(t *testing.T, s blob.Store, seq uint64, data []byte, base *manifest.Manifest) *manifest.Manifest {
	t.Helper()
	m := publish(t, s, seq, data, false)
	enc, err := manifest.EncodeDelta(m, base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{names.ManifestKey(dbKey, seq), names.LatestKey(dbKey)} {
		if err := s.Put(ctx, key, enc); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// withChunk returns a copy of data with chunk i filled with b.
func withChunk(data []byte, i int, b byte) []byte {
	out := bytes.Clone(data)
	for j := i * chunkSize; j < (i+1)*chunkSize; j++ {
		out[j] = b
	}
	return out
}

// TestDeltaRequests counts the requests of a cold open and of refreshes
// when latest is a delta manifest: the open is one conditional GET of
// latest and one GET of its base; a refresh to a delta on the base already
// resolved is one GET; a base that changed under the same sequence number
// (the cache's copy no longer matches what the delta names) is fetched
// again, not reported as corruption.
func TestDeltaRequests(t *testing.T) {
	cs := &counting{Store: newStore(t)}
	d100 := randomData(1, 6)
	base := publish(t, cs.Store, 100, d100, false)
	d101 := withChunk(d100, 2, 0xa1)
	publishDelta(t, cs.Store, 101, d101, base)
	m := newManager(t, cs)

	src := open(t, m, dbKey, "", "")
	if n, l := cs.requests(), cs.lists.Load(); n != 2 || l != 0 {
		t.Fatalf("cold open of a delta: %d requests (%d LIST), want 2 and no LIST", n, l)
	}
	if got := readAll(t, src); !bytes.Equal(got, d101) {
		t.Fatal("version 101 (a delta) does not read its data")
	}

	steps := []struct {
		name string
		seq  uint64
		make func() []byte // publishes the version, returns its data
		want int64         // requests of the refresh
	}{
		{"delta on the cached base", 102, func() []byte {
			d := withChunk(d100, 3, 0xb2)
			publishDelta(t, cs.Store, 102, d, base)
			return d
		}, 1},
		{"unchanged", 102, nil, 1},
		{"full manifest (a new base)", 103, func() []byte {
			d := withChunk(d100, 4, 0xc3)
			base = publish(t, cs.Store, 103, d, true)
			return d
		}, 1},
		{"delta on the new base, not cached yet", 104, func() []byte {
			d := withChunk(d100, 5, 0xd4)
			publishDelta(t, cs.Store, 104, d, base)
			return d
		}, 2},
		{"base rewritten under its sequence number", 105, func() []byte {
			// The cached base 103 no longer matches the digest the new
			// delta names: it is dropped and fetched again (without
			// the retry, this refresh fails as a corrupt delta).
			d := randomData(9, 6)
			base = publish(t, cs.Store, 103, d, false)
			d = withChunk(d, 1, 0xe5)
			publishDelta(t, cs.Store, 105, d, base)
			return d
		}, 2},
	}
	var want []byte = d101
	for _, st := range steps {
		if st.make != nil {
			want = st.make()
		}
		before := cs.requests()
		mf, err := src.Current(true)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if n := cs.requests() - before; n != st.want || mf.Seq != st.seq {
			t.Fatalf("%s: version %d in %d requests, want %d in %d", st.name, mf.Seq, n, st.seq, st.want)
		}
		if got := readAll(t, src); !bytes.Equal(got, want) {
			t.Fatalf("%s: version %d does not read its data", st.name, mf.Seq)
		}
	}
	if s := m.Stats(); s.RefreshErrors != 0 {
		t.Fatalf("%d refresh errors", s.RefreshErrors)
	}
}
