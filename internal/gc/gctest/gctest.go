// Package gctest builds synthetic targets for garbage-collection tests
// (databases with many versions that share chunks) and checks a target's
// invariants: every stored manifest's chunks are present, and every
// version restores byte-identically.
package gctest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// ChunkSize is the chunk size of the databases built.
const ChunkSize = 1 << 16

// Fixture remembers the bytes of every version built.
type Fixture struct {
	mu   sync.Mutex
	Data map[string]map[uint64][]byte // database key → seq → file bytes
}

// Key returns the database key of database number i.
func Key(i int) string { return names.Key(Name(i)) }

// Name returns the replica name of database number i.
func Name(i int) string { return fmt.Sprintf("gctest:/db/%d.db", i) }

// Build writes dbs databases of versions versions and chunks chunks each.
// Chunk 1 of every database is the same (chunks are shared across
// databases), chunk 0 changes with every version, and each version changes
// one more chunk; the last chunk is all zeros (never stored).
func Build(t testing.TB, s blob.Store, dbs, versions, chunks int, seed uint64) *Fixture {
	t.Helper()
	f := &Fixture{Data: map[string]map[uint64][]byte{}}
	rng := rand.New(rand.NewPCG(seed, 1))
	for d := range dbs {
		data := make([]byte, chunks*ChunkSize)
		for i := ChunkSize; i < (chunks-1)*ChunkSize; i += 8 {
			binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
		}
		copy(data[ChunkSize:2*ChunkSize], bytes.Repeat([]byte("shared"), ChunkSize/6))
		for v := range versions {
			seq := uint64(1000 + v)
			binary.BigEndian.PutUint64(data[40:], seq)
			binary.BigEndian.PutUint32(data[24:28], uint32(seq))
			if c := 2 + v%max(1, chunks-3); c < chunks-1 {
				binary.LittleEndian.PutUint64(data[c*ChunkSize+8*rng.IntN(ChunkSize/8):], rng.Uint64())
			}
			f.Put(t, s, Name(d), seq, data)
		}
	}
	return f
}

// Put stores one version of a database (its chunks, its full manifest
// and latest) and remembers its bytes.
func (f *Fixture) Put(t testing.TB, s blob.Store, name string, seq uint64, data []byte) *manifest.Manifest {
	t.Helper()
	return f.PutDelta(t, s, name, seq, data, nil)
}

// PutDelta is Put that stores the manifest (and latest) as a delta
// against base when base is not nil.
func (f *Fixture) PutDelta(t testing.TB, s blob.Store, name string, seq uint64, data []byte, base *manifest.Manifest) *manifest.Manifest {
	t.Helper()
	ctx := context.Background()
	m := &manifest.Manifest{Name: name, Seq: seq, CommitTime: time.Now(), PageSize: 4096, ChunkSize: ChunkSize,
		Length: int64(len(data)), VersionID: []byte(fmt.Sprint(seq)), HeaderHash: manifest.HashOf(data[:100])}
	for i := 0; i*ChunkSize < len(data); i++ {
		c := data[i*ChunkSize : min(len(data), (i+1)*ChunkSize)]
		h := manifest.HashOf(c)
		m.Chunks = append(m.Chunks, h)
		if i == 0 {
			m.Chunk0 = append([]byte(nil), c...)
			continue
		}
		if h == manifest.ZeroChunkHash(len(c)) {
			continue
		}
		if err := s.Put(ctx, names.ChunkKey(h.String()), manifest.EncodeChunk(c)); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := m.Encode()
	if base != nil {
		enc, err = manifest.EncodeDelta(m, base)
	}
	if err != nil {
		t.Fatal(err)
	}
	key := names.Key(name)
	if err := s.Put(ctx, names.ManifestKey(key, seq), enc); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, names.LatestKey(key), enc); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Data[key] == nil {
		f.Data[key] = map[uint64][]byte{}
	}
	f.Data[key][seq] = append([]byte(nil), data...)
	return m
}

// Stored is what a target holds: every database's stored versions
// (ascending) and the version its latest names.
type Stored struct {
	Versions map[string][]uint64
	Latest   map[string]uint64
}

// List returns the manifests stored in s.
func List(t testing.TB, s blob.Store) Stored {
	t.Helper()
	ctx := context.Background()
	keys, err := s.List(ctx, "dbs/")
	if err != nil {
		t.Fatal(err)
	}
	st := Stored{Versions: map[string][]uint64{}, Latest: map[string]uint64{}}
	for _, k := range keys {
		rest := strings.TrimPrefix(k, "dbs/")
		db, tail, _ := strings.Cut(rest, "/")
		switch {
		case tail == "latest":
			m, err := restore.Latest(ctx, s, db)
			if err != nil {
				t.Fatalf("latest of %s: %v", db, err)
			}
			st.Latest[db] = m.Seq
		case strings.HasPrefix(tail, "manifests/"):
			seq, err := names.ParseManifestKey(k)
			if err != nil {
				t.Fatal(err)
			}
			st.Versions[db] = append(st.Versions[db], seq)
		}
	}
	for _, v := range st.Versions {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	}
	return st
}

// Missing returns the chunks that stored manifests (every version and
// latest) reference and s lacks (for a packed chunk: its pack object),
// and the chunk and pack objects s holds that none references. Manifests that vanish while it reads are skipped.
func Missing(t testing.TB, s blob.Store) (missing, unreferenced []string) {
	t.Helper()
	ctx := context.Background()
	held := map[string]bool{}
	keys, err := s.List(ctx, "chunks/")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		held[strings.TrimPrefix(k, "chunks/")] = true
	}
	packKeys, err := s.List(ctx, "packs/")
	if err != nil {
		t.Fatal(err)
	}
	heldPacks := map[string]bool{}
	for _, k := range packKeys {
		heldPacks[k] = true
	}
	refd := map[string]bool{}
	check := func(what string, m *manifest.Manifest) {
		for i, h := range m.Chunks {
			if i == 0 || h == manifest.ZeroChunkHash(manifest.ChunkLen(i, m.Length, m.ChunkSize)) || m.Inline[h] != nil {
				continue // in the manifest object (inline chunks: verified at decode)
			}
			if l, ok := m.Located(h); ok {
				// Packed: its pack object must be there (docs/FORMAT.md, Packs).
				key := names.PackKey(l.Pack.String())
				refd[key] = true
				if !heldPacks[key] {
					if ok, err := s.Exists(ctx, key); err != nil || !ok {
						missing = append(missing, fmt.Sprintf("%s chunk %d %s in %s", what, i, h, key))
					}
				}
				continue
			}
			refd[h.String()] = true
			if !held[h.String()] {
				if ok, err := s.Exists(ctx, names.ChunkKey(h.String())); err != nil || !ok {
					missing = append(missing, fmt.Sprintf("%s chunk %d %s", what, i, h))
				}
			}
		}
	}
	st := List(t, s)
	for db := range st.Latest {
		if m, err := restore.Latest(ctx, s, db); err == nil {
			check(db+" latest", m)
		}
	}
	for db, seqs := range st.Versions {
		for _, seq := range seqs {
			m, err := restore.Version(ctx, s, db, seq)
			if err != nil {
				continue // deleted since the listing
			}
			check(fmt.Sprintf("%s version %d", db, seq), m)
		}
	}
	for h := range held {
		if !refd[h] {
			unreferenced = append(unreferenced, h)
		}
	}
	for k := range heldPacks {
		if !refd[k] {
			unreferenced = append(unreferenced, k)
		}
	}
	sort.Strings(unreferenced)
	return missing, unreferenced
}

// CheckRestores restores every stored version whose bytes f knows and
// compares them; it returns how many it checked.
func (f *Fixture) CheckRestores(t testing.TB, s blob.Store) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	st := List(t, s)
	for db, seqs := range st.Versions {
		for _, seq := range seqs {
			want, ok := f.Data[db][seq]
			if !ok {
				continue
			}
			m, err := restore.Version(ctx, s, db, seq)
			if err != nil {
				t.Fatalf("version %d of %s: %v", seq, db, err)
			}
			got := &buffer{b: make([]byte, m.Length)}
			if err := restore.Write(ctx, s, m, got, 4); err != nil {
				t.Fatalf("restore version %d of %s: %v", seq, db, err)
			}
			if !bytes.Equal(got.b, want) {
				t.Fatalf("version %d of %s restores to other bytes", seq, db)
			}
			n++
		}
	}
	return n
}

type buffer struct{ b []byte }

func (w *buffer) WriteAt(p []byte, off int64) (int, error) {
	copy(w.b[off:], p)
	return len(p), nil
}
