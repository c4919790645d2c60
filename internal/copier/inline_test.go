package copier

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/retention"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// inlineDB drives one database through a copier in the background (no
// flush), checking each version as a reader sees it.
type inlineDB struct {
	t     *testing.T
	c     *Copier
	s     blob.Store
	root  string
	short string
	seq   uint64
	data  []byte
}

// newInlineDB starts a copier with a long history interval on s, warms it
// up (it learns how s versions objects, so that it can write deltas) and
// publishes version 1 of an 8-chunk database, which gets its history
// object (the first of the process).
func newInlineDB(t *testing.T, s blob.Store, short string, mutate ...func(*Options)) *inlineDB {
	t.Helper()
	opts := append([]func(*Options){func(o *Options) { o.HistoryInterval = time.Hour; o.Interval = 10 * time.Millisecond }}, mutate...)
	c, root := newTestCopier(t, s, opts...)
	warm := K(short + "-warm")
	for seq := uint64(1); seq <= 2; seq++ {
		stageNamed(t, root, warm, "test:"+short+"-warm", seq, randomBytes(2*testChunk, seq))
		c.Notify(warm)
		waitFor(t, 10*time.Second, "the warm-up version", func() bool { return latestSeq(t, s, warm) == seq })
	}
	db := &inlineDB{t: t, c: c, s: s, root: root, short: short, data: randomBytes(8*testChunk, 3)}
	db.commit()
	if !hasHistory(s, K(short), 1) {
		t.Fatal("version 1 has no history object")
	}
	return db
}

// commit stages the next version with the given chunks rewritten and
// waits until it is latest.
func (db *inlineDB) commit(chunks ...int) *manifest.Manifest {
	db.t.Helper()
	db.seq++
	db.data[27] = byte(db.seq)
	for _, i := range chunks {
		for j := range 64 {
			db.data[i*testChunk+j*100] ^= byte(db.seq)
		}
	}
	m := stageNamed(db.t, db.root, K(db.short), "test:"+db.short, db.seq, db.data)
	db.c.Notify(K(db.short))
	deadline := time.Now().Add(10 * time.Second)
	for latestSeq(db.t, db.s, K(db.short)) != db.seq {
		if time.Now().After(deadline) {
			d, _ := spool.Existing(db.root, K(db.short))
			le, _ := d.ReadLastError()
			db.t.Fatalf("version %d not uploaded; last error: %+v", db.seq, le)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return m
}

// latest reads the store's latest version, checks that it restores the
// database byte for byte and that no stored manifest lacks a chunk, and
// returns it.
func (db *inlineDB) latest() *manifest.Manifest {
	db.t.Helper()
	m, err := restore.Latest(context.Background(), db.s, K(db.short))
	if err != nil {
		db.t.Fatal(err)
	}
	if m.Seq != db.seq {
		db.t.Fatalf("latest is version %d, want %d", m.Seq, db.seq)
	}
	restoreEquals(db.t, db.s, m, db.data)
	if missing, _ := gctest.Missing(db.t, db.s); len(missing) > 0 {
		db.t.Fatalf("version %d: stored manifests lack chunks: %v", db.seq, missing)
	}
	return m
}

func stored(s blob.Store, h manifest.Hash) bool {
	ok, err := s.Exists(context.Background(), names.ChunkKey(h.String()))
	return err == nil && ok
}

// inlineSet returns the indices of m's chunks that its latest object
// carries inline.
func inlineSet(m *manifest.Manifest) []int {
	var out []int
	for i, h := range m.Chunks {
		if m.Inline[h] != nil {
			out = append(out, i)
		}
	}
	return out
}

func sameInts(a, b []int) bool { return bytes.Equal([]byte(fmtInts(a)), []byte(fmtInts(b))) }
func fmtInts(a []int) string {
	var b []byte
	for _, x := range a {
		b = append(b, byte(x), ',')
	}
	return string(b)
}

// TestInline_SmallVersionsOnePut: a one-chunk version published as latest
// only is one PUT (its latest object, carrying the chunk); a chunk it
// carries is carried again while later versions reference it and dropped
// when they no longer do; a version with more new chunks than the bound
// stores them (and the carried ones) as chunk objects, as before.
func TestInline_SmallVersionsOnePut(t *testing.T) {
	s := newMemStore()
	db := newInlineDB(t, s, "one")
	steps := []struct {
		name     string
		changed  []int
		inline   []int // chunk indices the latest carries inline
		puts     int   // objects written for the version
		unstored []int // chunks of the previous version that must stay out of chunks/
	}{
		{"one chunk", []int{2}, []int{2}, 1, nil},
		{"another chunk: the first is carried", []int{5}, []int{2, 5}, 1, nil},
		{"the first again: its old content is dropped", []int{2}, []int{2, 5}, 1, []int{2}},
		{"five chunks: over the bound", []int{1, 3, 4, 6, 7}, nil, 1 + 5 + 2, nil},
		{"one chunk after that", []int{4}, []int{4}, 1, nil},
	}
	var prev *manifest.Manifest
	for _, st := range steps {
		before := len(s.writesSnapshot())
		db.commit(st.changed...)
		m := db.latest()
		if got := inlineSet(m); !sameInts(got, st.inline) {
			t.Fatalf("%s: inline chunks %v, want %v", st.name, got, st.inline)
		}
		if n := len(s.writesSnapshot()) - before; n != st.puts {
			t.Fatalf("%s: %d objects written (%v), want %d", st.name, n, s.writesSnapshot()[before:], st.puts)
		}
		for _, i := range st.inline {
			if stored(s, m.Chunks[i]) {
				t.Fatalf("%s: inline chunk %d is also a chunk object", st.name, i)
			}
		}
		for _, i := range st.unstored {
			if stored(s, prev.Chunks[i]) {
				t.Fatalf("%s: the previous content of chunk %d, inline only and now unreferenced, was stored", st.name, i)
			}
		}
		if hasHistory(s, K("one"), db.seq) {
			t.Fatalf("%s: version %d got a history object", st.name, db.seq)
		}
		prev = m
	}
}

func (s *memStore) writesSnapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

// TestInline_StoredBeforeHistory: the history object of a version that
// carried inline chunks, written when its interval is over (the
// background) or by a flush, comes after those chunks are stored as chunk
// objects, and never carries any itself.
func TestInline_StoredBeforeHistory(t *testing.T) {
	for _, flush := range []bool{false, true} {
		s := newMemStore()
		interval := time.Hour
		if !flush {
			// Long enough that version 2 (and, after its history
			// object, version 3) is uploaded within it of the previous
			// history object on a loaded machine: with 300 ms, under
			// -race, version 2 went to history at once, carrying nothing
			// inline.
			interval = 3 * time.Second
		}
		db := newInlineDB(t, s, "hist", func(o *Options) { o.HistoryInterval = interval })
		db.commit(3)
		m := db.latest()
		h := m.Chunks[3]
		if m.Inline[h] == nil {
			t.Fatalf("flush %v: version 2 does not carry chunk 3 inline", flush)
		}
		if flush {
			if err := db.c.Upload(context.Background(), K("hist")); err != nil {
				t.Fatal(err)
			}
		} else {
			waitFor(t, 30*time.Second, "the history object", func() bool { return hasHistory(s, K("hist"), 2) })
		}
		obj, ok := s.get(names.ManifestKey(K("hist"), 2))
		if !ok {
			t.Fatalf("flush %v: no history object", flush)
		}
		hm, d, err := manifest.DecodeObject(obj)
		if err != nil {
			t.Fatal(err)
		}
		if (hm != nil && len(hm.Inline) > 0) || (d != nil && len(d.Inline) > 0) {
			t.Fatalf("flush %v: the history object carries inline chunks", flush)
		}
		if !stored(s, h) {
			t.Fatalf("flush %v: chunk 3 is not a chunk object under its history object", flush)
		}
		writes := s.writesSnapshot()
		ci, hi := -1, -1
		for i, k := range writes {
			switch k {
			case names.ChunkKey(h.String()):
				ci = i
			case names.ManifestKey(K("hist"), 2):
				hi = i
			}
		}
		if ci < 0 || hi < ci {
			t.Fatalf("flush %v: chunk stored at write %d, history object at %d", flush, ci, hi)
		}
		restoreEquals(t, s, mustVersion(t, s, K("hist"), 2), db.data)
		db.latest()
		// The next version references the stored chunk: not carried.
		db.commit(5)
		if got := inlineSet(db.latest()); !flush && !sameInts(got, []int{5}) {
			t.Fatalf("after history: inline chunks %v, want [5]", got)
		}
	}
}

// TestInline_RestartCarriesInlineOnlyChunk: a process published a version
// whose chunk lives only inline in latest, and died; the next process's
// first version still references it (its bytes in the upload record, the
// staged copy present or lost) and is written to history: the chunk is
// stored first.
func TestInline_RestartCarriesInlineOnlyChunk(t *testing.T) {
	for _, lost := range []bool{false, true} {
		s := newMemStore()
		db := newInlineDB(t, s, "restart")
		db.commit(2)
		h := db.latest().Chunks[2]
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = db.c.Close(ctx) // a crash: no flush
		c2, _ := newTestCopier(t, s, func(o *Options) {
			o.SpoolDir = db.root
			o.HistoryInterval = time.Hour
			o.Interval = 10 * time.Millisecond
		})
		db.c = c2
		db.seq++
		db.data[27] = byte(db.seq)
		db.data[6*testChunk] ^= 1
		stageNamed(t, db.root, K("restart"), "test:restart", db.seq, db.data)
		if lost {
			d, err := spool.Existing(db.root, K("restart"))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.RemoveChunk(h); err != nil {
				t.Fatal(err)
			}
		}
		c2.Notify(K("restart"))
		waitFor(t, 10*time.Second, "version 3", func() bool { return latestSeq(t, s, K("restart")) == db.seq })
		if !stored(s, h) {
			t.Fatalf("lost %v: the inline-only chunk is not stored under the new process's first version", lost)
		}
		db.latest()
		restoreEquals(t, s, mustVersion(t, s, K("restart"), db.seq), db.data)
	}
}

// TestInline_GCBetweenVersions: collections run between versions (grace
// 0: no upload runs during them) never delete a chunk a stored version
// needs, and inline chunks need no chunk object.
func TestInline_GCBetweenVersions(t *testing.T) {
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	db := newInlineDB(t, s, "gc")
	ctx := context.Background()
	for _, changed := range [][]int{{2}, {5}, {2}, {1, 3, 4, 6, 7}, {4}, {4, 5}} {
		db.commit(changed...)
		db.latest()
		sum, err := gc.Run(ctx, s, gc.Options{Policy: retention.Policy{KeepLast: 1}, Grace: 0, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if sum.MissingChunks != 0 {
			t.Fatalf("version %d: the collection counts %d missing chunks", db.seq, sum.MissingChunks)
		}
		db.latest()
	}
}
