package copier

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// Repacking tests (repack.go): a bulk-loaded database whose pages are
// then rewritten at random keeps the packs its latest version references
// near its own size, and every version restores byte for byte.

const (
	repackChunks    = 64                   // chunks of the test database
	repackPackBytes = 16 * (testChunk + 1) // 16 chunks a pack
)

// churn is a database bulk-loaded in packs and then rewritten at random,
// one version per step, uploaded by a copier.
type churn struct {
	t      testing.TB
	s      blob.Store
	c      *Copier
	root   string
	name   string
	key    string
	chunks [][]byte // the database, never changed in place
	data   []byte   // the bytes of the version last staged
	seq    uint64
	rng    *rand.Rand
	want   map[uint64][][]byte    // every version's chunks (nil: not kept)
	prev   map[manifest.Hash]bool // the chunks of the version last staged
}

// newChurn bulk-loads the database (version 1) through a copier on s
// with the repacking options mutate sets.
func newChurn(t *testing.T, s blob.Store, name string, mutate ...func(*Options)) *churn {
	t.Helper()
	opts := append([]func(*Options){func(o *Options) { o.PackBytes = repackPackBytes }}, mutate...)
	c, root := newTestCopier(t, s, opts...)
	w := loadChurn(t, c, root, s, name, repackChunks)
	w.want = map[uint64][][]byte{}
	w.remember()
	return w
}

// loadChurn bulk-loads a database of n random chunks as version 1
// through c, whose spool is root and target s.
func loadChurn(t testing.TB, c *Copier, root string, s blob.Store, name string, n int) *churn {
	t.Helper()
	data := randomBytes(n*testChunk, 40)
	clear(data[100:testChunk]) // chunk 0 (inline in manifests) mostly zeros, as SQLite's
	w := &churn{t: t, s: s, c: c, root: root, name: name, key: names.Key(name), rng: rand.New(rand.NewPCG(41, 42))}
	for i := range n {
		w.chunks = append(w.chunks, data[i*testChunk:(i+1)*testChunk])
	}
	w.commit()
	return w
}

// commit stages and uploads the current bytes as the next version.
func (w *churn) commit() {
	w.t.Helper()
	w.stage()
	if err := w.c.Upload(context.Background(), w.key); err != nil {
		w.t.Fatalf("upload version %d: %v", w.seq, err)
	}
	w.remember()
}

// remember records the version last staged as one to restore.
func (w *churn) remember() {
	if w.want != nil {
		w.want[w.seq] = slices.Clone(w.chunks)
	}
}

// version returns the bytes of version seq.
func (w *churn) version(seq uint64) []byte { return bytes.Join(w.want[seq], nil) }

// stage stages the current bytes as the next version, as the tracker
// does: only the chunks the previous version did not have.
func (w *churn) stage() {
	w.t.Helper()
	w.seq++
	c0 := bytes.Clone(w.chunks[0])
	c0[24] = byte(w.seq) // the change counter
	w.chunks[0] = c0
	w.data = bytes.Join(w.chunks, nil)
	prev := w.prev
	m := stageSome(w.t, w.root, w.key, w.name, w.seq, w.data, func(h manifest.Hash) bool { return !prev[h] })
	w.prev = make(map[manifest.Hash]bool, len(m.Chunks))
	for _, h := range m.Chunks {
		w.prev[h] = true
	}
}

// rewrite replaces n random chunks (not chunk 0) with new bytes.
func (w *churn) rewrite(n int) {
	for range n {
		w.chunks[1+w.rng.IntN(len(w.chunks)-1)] = randomBytes(testChunk, w.rng.Uint64())
	}
}

// step rewrites chunks and commits: a mix of small versions (their
// chunks go as chunk objects) and larger ones (a pack each).
func (w *churn) step(v int) {
	w.rewrite([]int{6, 2, 9, 1, 5, 12}[v%6])
	w.commit()
}

// latest returns the store's latest manifest.
func (w *churn) latest() *manifest.Manifest {
	w.t.Helper()
	m, err := restore.Latest(context.Background(), w.s, w.key)
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

// referencedPackBytes sums the sizes of the packs m places chunks in.
func referencedPackBytes(t testing.TB, s blob.Store, m *manifest.Manifest) int64 {
	t.Helper()
	var n int64
	for _, p := range m.PackNames() {
		b, err := s.Get(context.Background(), names.PackKey(p.String()))
		if err != nil {
			t.Fatalf("pack %s of version %d: %v", p, m.Seq, err)
		}
		n += int64(len(b))
	}
	return n
}

// checkAll restores every version (its history object) and latest, byte
// for byte.
func (w *churn) checkAll() {
	w.t.Helper()
	for seq := range w.want {
		checkStored(w.t, w.s, w.key, seq, w.version(seq))
	}
	w.checkLatest(w.s)
}

// checkLatest restores the latest version from s (which may be another
// view of the store w uploads to) and compares it with the current bytes.
func (w *churn) checkLatest(s blob.Store) {
	w.t.Helper()
	ctx := context.Background()
	m, err := restore.Latest(ctx, s, w.key)
	if err != nil {
		w.t.Fatalf("%s: latest: %v", s, err)
	}
	f := memFile{make([]byte, m.Length)}
	if err := restore.Write(ctx, s, m, &f, 4); err != nil {
		w.t.Fatalf("%s: restore latest (version %d): %v", s, m.Seq, err)
	}
	if !bytes.Equal(f.b, w.data) {
		w.t.Fatalf("%s: latest (version %d) restored differently", s, m.Seq)
	}
}

// checkStored restores version seq of key from its history object in s
// and compares it with want.
func checkStored(t testing.TB, s blob.Store, key string, seq uint64, want []byte) {
	t.Helper()
	ctx := context.Background()
	m, err := restore.Version(ctx, s, key, seq)
	if err != nil {
		t.Fatalf("version %d: %v", seq, err)
	}
	f := memFile{make([]byte, m.Length)}
	if err := restore.Write(ctx, s, m, &f, 4); err != nil {
		t.Fatalf("restore version %d: %v", seq, err)
	}
	if !bytes.Equal(f.b, want) {
		t.Fatalf("version %d restored differently", seq)
	}
}

// TestRepack_BoundsReferencedPacks: with repacking (the default
// threshold), the packs the latest version references stay within twice
// the database's size plus one pack after every version; with repacking
// off they do not. Every version restores byte for byte either way.
func TestRepack_BoundsReferencedPacks(t *testing.T) {
	const versions = 80
	dbBytes := int64(repackChunks * testChunk)
	bound := 2*dbBytes + repackPackBytes
	for _, tc := range []struct {
		name      string
		threshold int
	}{{"default", 0}, {"off", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newChurn(t, newMemStore(), "test:repack-"+tc.name, func(o *Options) { o.RepackThreshold = tc.threshold })
			var worst int64
			over := 0
			for v := range versions {
				w.step(v)
				n := referencedPackBytes(t, w.s, w.latest())
				worst = max(worst, n)
				if n > bound {
					over++
				}
			}
			st := w.c.Stats()
			t.Logf("threshold %s: referenced pack bytes at worst %d (%.2f× the database; bound %d), %d of %d versions over the bound; %d repacks, %d packs left, %d bytes re-sent, %d errors",
				tc.name, worst, float64(worst)/float64(dbBytes), bound, over, versions, st.Repacks, st.RepackedPacks, st.RepackedBytes, st.RepackErrors)
			w.checkAll()
			if st.RepackErrors != 0 {
				t.Errorf("%d repack errors", st.RepackErrors)
			}
			switch tc.name {
			case "default":
				if over > 0 {
					t.Errorf("the latest version referenced more than %d bytes of packs after %d of %d versions (worst %d)", bound, over, versions, worst)
				}
				if st.Repacks == 0 {
					t.Error("no version was repacked")
				}
			case "off":
				if over == 0 {
					t.Errorf("without repacking the workload stayed within the bound (worst %d): it does not test repacking", worst)
				}
				if st.Repacks != 0 {
					t.Errorf("%d repacks with repacking off", st.Repacks)
				}
			}
		})
	}
}

// TestRepack_WorthTheFullManifest: a repack publishes a full manifest
// (a new delta base), so with delta manifests on it is done only when
// the packs it leaves free at least that manifest's size; with full
// manifests only it costs nothing more and is done. Here the dead records
// are a few bytes each (compressible chunks) and chunk 0, inline in every
// full manifest, is incompressible.
func TestRepack_WorthTheFullManifest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fullEvery int
		repacked  bool
	}{{"deltas", 0, false}, {"full only", 1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newMemStore()
			name := "test:repack-worth"
			key := names.Key(name)
			c, root := newTestCopier(t, s, func(o *Options) { o.PackBytes = repackPackBytes; o.FullEvery = tc.fullEvery })
			data := randomBytes(8*testChunk, 50)
			for i := 1; i < 8; i++ {
				clear(data[i*testChunk : (i+1)*testChunk])
				data[i*testChunk] = byte(i) // distinct, compressible
			}
			for seq := uint64(1); seq <= 2; seq++ {
				if seq == 2 {
					for i := 1; i <= 5; i++ {
						data[i*testChunk+1] = 0xee // 5 of the 7 records die
					}
				}
				stageNamed(t, root, key, name, seq, data)
				if err := c.Upload(context.Background(), key); err != nil {
					t.Fatal(err)
				}
				checkStored(t, s, key, seq, data)
			}
			if got := c.Stats().Repacks > 0; got != tc.repacked {
				t.Errorf("repacked %v, want %v", got, tc.repacked)
			}
		})
	}
}

// TestRepack_DedupLearnsNewLocations: after a repack, a version that
// moves a repacked chunk to another index places it in the new pack, not
// the old one: through the known set in the same process, through the
// upload record in a new one. (Placing it in the old pack would keep
// that pack referenced, and alive, for as long as the chunk lives.)
func TestRepack_DedupLearnsNewLocations(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	w := newChurn(t, s, "test:repack-dedup")
	m1 := w.latest()
	old := m1.Locs[m1.Chunks[20]].Pack
	// Rewrite every chunk of chunk 20's pack but 20 and 21: its pack is
	// then mostly dead.
	for i := 1; i < repackChunks; i++ {
		if l, ok := m1.Locs[m1.Chunks[i]]; ok && l.Pack == old && i != 20 && i != 21 {
			w.chunks[i] = randomBytes(testChunk, uint64(1000+i))
		}
	}
	w.commit()
	m2 := w.latest()
	if w.c.Stats().Repacks == 0 || m2.Locs[m2.Chunks[20]].Pack == old {
		t.Fatalf("version 2: %d repacks, chunk 20 still in its old pack", w.c.Stats().Repacks)
	}
	moved := m2.Locs[m2.Chunks[20]].Pack
	// Version 3 copies chunk 20 to index 30 (same process: known set).
	w.chunks[30] = w.chunks[20]
	w.commit()
	m3 := w.latest()
	if got := m3.Locs[m3.Chunks[30]].Pack; got != moved {
		t.Errorf("version 3 places the moved chunk in pack %s, want the repacked one %s (old: %s)", got, moved, old)
	}
	// Version 4, by a new process (upload record), copies chunk 21.
	c2 := New(Options{SpoolDir: w.root, Targets: []blob.Store{s}, RateLimit: 10000, PackBytes: repackPackBytes})
	defer c2.Close(ctx)
	w.c = c2
	w.chunks[31] = w.chunks[21]
	w.commit()
	m4 := w.latest()
	if got := m4.Locs[m4.Chunks[31]].Pack; got != moved {
		t.Errorf("version 4 places the moved chunk in pack %s, want the repacked one %s (old: %s)", got, moved, old)
	}
	for _, m := range []*manifest.Manifest{m3, m4} {
		for _, p := range m.PackNames() {
			if p == old {
				t.Errorf("version %d still references the repacked pack %s", m.Seq, old)
			}
		}
	}
	w.checkAll()
}

// rangeRecorder records the lengths of the ranged GETs made to a store.
type rangeRecorder struct {
	blob.Store
	mu   sync.Mutex
	lens []int64
}

func (r *rangeRecorder) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	r.mu.Lock()
	r.lens = append(r.lens, n)
	r.mu.Unlock()
	return r.Store.GetRange(ctx, key, off, n)
}

// TestRepack_ReadRuns: the live records of a pack are read in runs of
// nearby records, no run (one GET, held in memory) longer than
// repackMaxRun, and every record comes back verified with its bytes.
func TestRepack_ReadRuns(t *testing.T) {
	mem := newMemStore()
	rec := &rangeRecorder{Store: mem}
	c := New(Options{SpoolDir: t.TempDir(), Targets: []blob.Store{rec}, RateLimit: 10000})
	defer c.Close(context.Background())
	// A 96-chunk pack (6 MiB of incompressible records); every other
	// record is live: holes of one record, read through.
	var b manifest.PackBuilder
	chunks := map[manifest.Hash][]byte{}
	var order []manifest.Hash
	for i := range 96 {
		data := randomBytes(testChunk, uint64(500+i))
		h := manifest.HashOf(data)
		chunks[h] = data
		order = append(order, h)
		b.Add(h, manifest.EncodeChunk(data))
	}
	obj, name, locs := b.Finish()
	if err := mem.Put(context.Background(), names.PackKey(name.String()), obj); err != nil {
		t.Fatal(err)
	}
	u := &packUse{pack: name}
	for i := 0; i < len(order); i += 2 {
		h := order[i]
		u.recs = append(u.recs, liveRecord{hash: h, loc: locs[h], index: i + 1, n: testChunk})
	}
	if err := c.readLive(context.Background(), &attempt{st: &dbState{key: "k"}}, u); err != nil {
		t.Fatal(err)
	}
	for _, r := range u.recs {
		got, err := manifest.DecodeChunk(r.raw, r.hash, testChunk)
		if err != nil || !bytes.Equal(got, chunks[r.hash]) {
			t.Fatalf("record of chunk %d: %v", r.index, err)
		}
	}
	if len(rec.lens) < 2 {
		t.Errorf("%d GETs for 6 MiB of live records and holes, want several runs", len(rec.lens))
	}
	for _, n := range rec.lens {
		if n > repackMaxRun {
			t.Errorf("a GET of %d bytes, over the %d of a run", n, repackMaxRun)
		}
	}
}
