package copier

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// packCopier is a test copier that sends packs of at most packBytes.
func packCopier(t *testing.T, s blob.Store, packBytes int) (*Copier, string) {
	return newTestCopier(t, s, func(o *Options) { o.PackBytes = packBytes })
}

// objects lists the keys of s under prefix.
func objects(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	keys, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// restored restores the latest version of the database called name from
// s and returns its bytes.
func restored(t *testing.T, s blob.Store, name string) (*manifest.Manifest, []byte) {
	t.Helper()
	ctx := context.Background()
	m, err := restore.Latest(ctx, s, names.Key(name))
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	for _, parallel := range []int{1, 8} {
		w := &bytesWriterAt{b: make([]byte, m.Length)}
		if err := restore.Write(ctx, s, m, w, parallel); err != nil {
			t.Fatalf("restore with %d workers: %v", parallel, err)
		}
		if first != nil && !bytes.Equal(first, w.b) {
			t.Fatal("restores with 1 and 8 workers differ")
		}
		first = w.b
	}
	return m, first
}

// bytesWriterAt is a file of a fixed length in memory.
type bytesWriterAt struct{ b []byte }

func (w *bytesWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(w.b)) {
		return 0, errors.New("write past the end")
	}
	copy(w.b[off:], p)
	return len(p), nil
}

// TestPacks_UploadAndRestore: a version with many new chunks goes up in
// packs of at most pack_bytes, none as its own object; it restores byte
// for byte; a version with few new chunks sends them as chunk objects.
func TestPacks_UploadAndRestore(t *testing.T) {
	s := newMemStore()
	c, root := packCopier(t, s, 8*(testChunk+1)) // 8 chunks a pack
	const name = "test:packs"
	key := names.Key(name)
	data := randomBytes(21*testChunk+100, 1)
	stageNamed(t, root, key, name, 1, data)
	if err := c.Upload(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if n := len(objects(t, s, "chunks/")); n != 0 {
		t.Errorf("%d chunk objects for a bulk upload, want 0", n)
	}
	// 21 new chunks (1..21), at most 8 a pack: 3 packs of 7.
	if n := len(objects(t, s, "packs/")); n != 3 {
		t.Errorf("%d packs, want 3", n)
	}
	if got := c.Stats().PacksUploaded; got != 3 {
		t.Errorf("PacksUploaded = %d, want 3", got)
	}
	m, got := restored(t, s, name)
	if !bytes.Equal(got, data) {
		t.Fatal("restored bytes differ")
	}
	if len(m.Locs) != 21 {
		t.Errorf("%d chunk locations, want 21", len(m.Locs))
	}
	// Two changed chunks: below PackMinChunks, each its own object.
	data2 := bytes.Clone(data)
	copy(data2[3*testChunk:], randomBytes(100, 2))
	copy(data2[17*testChunk:], randomBytes(100, 3))
	stageNamed(t, root, key, name, 2, data2)
	if err := c.Upload(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if n := len(objects(t, s, "chunks/")); n != 2 {
		t.Errorf("%d chunk objects after a two-chunk version, want 2", n)
	}
	m2, got := restored(t, s, name)
	if !bytes.Equal(got, data2) {
		t.Fatal("restored bytes of version 2 differ")
	}
	if len(m2.Locs) != 19 {
		t.Errorf("version 2 places %d chunks in packs, want the 19 unchanged", len(m2.Locs))
	}
}

// TestPacks_DedupAcrossVersions: a later version that references chunks
// already packed (moved to other offsets of the file) reuses their
// locations, through the copier's known set and, in a new process,
// through the upload record.
func TestPacks_DedupAcrossVersions(t *testing.T) {
	s := newMemStore()
	const name = "test:dedup"
	key := names.Key(name)
	c, root := packCopier(t, s, 0)
	data := randomBytes(12*testChunk, 4)
	stageNamed(t, root, key, name, 1, data)
	if err := c.Upload(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	puts := s.count("put")
	// Version 2: the same chunks shifted by one chunk (a page moved),
	// plus a new first data chunk.
	data2 := append(append(bytes.Clone(data[:testChunk]), randomBytes(testChunk, 5)...), data[testChunk:]...)
	stageNamed(t, root, key, name, 2, data2)
	if err := c.Upload(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	// One new chunk object, and the manifest.
	if n := len(objects(t, s, "packs/")); n != 1 {
		t.Errorf("%d packs after a version of moved chunks, want the first one only", n)
	}
	if n := len(objects(t, s, "chunks/")); n != 1 {
		t.Errorf("%d chunk objects, want the 1 new chunk", n)
	}
	if _, got := restored(t, s, name); !bytes.Equal(got, data2) {
		t.Fatal("restored bytes of version 2 differ")
	}
	t.Logf("version 2 cost %d PUTs", s.count("put")-puts)

	// A new process (empty known set) carries the upload record's
	// locations: version 3 changes one more chunk, reuses the rest.
	c2 := New(Options{SpoolDir: root, Targets: []blob.Store{s}, RateLimit: 10000})
	data3 := bytes.Clone(data2)
	copy(data3[5*testChunk:], randomBytes(10, 6))
	stageNamed(t, root, key, name, 3, data3)
	if err := c2.Upload(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if err := c2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(objects(t, s, "packs/")); n != 1 {
		t.Errorf("%d packs after version 3, want 1", n)
	}
	m3, got := restored(t, s, name)
	if !bytes.Equal(got, data3) {
		t.Fatal("restored bytes of version 3 differ")
	}
	if len(m3.Locs) != 10 {
		t.Errorf("version 3 places %d chunks, want the 10 still packed", len(m3.Locs))
	}
}

// TestPacks_DeltaOverPackedBase: versions published as deltas against a
// packed base carry their own packs and keep the base's locations.
func TestPacks_DeltaOverPackedBase(t *testing.T) {
	s := newMemStore()
	const name = "test:delta"
	key := names.Key(name)
	c, root := packCopier(t, s, 0)
	data := randomBytes(40*testChunk, 7)
	stageNamed(t, root, key, name, 1, data)
	if err := c.Upload(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	deltas := 0
	for v := uint64(2); v <= 5; v++ {
		// Six changed chunks: packed, in a delta.
		for _, i := range []int{3, 9, 10, 11, 20, 30} {
			copy(data[i*testChunk+int(v):], randomBytes(50, v*100+uint64(i)))
		}
		stageNamed(t, root, key, name, v, data)
		if err := c.Upload(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		lb, _ := s.get(names.LatestKey(key))
		_, d, err := manifest.DecodeObject(lb)
		if err != nil {
			t.Fatal(err)
		}
		if d != nil {
			deltas++
			if len(d.Locs) != 6 {
				t.Errorf("version %d: the delta places %d chunks, want its 6 changed ones", v, len(d.Locs))
			}
		}
		if _, got := restored(t, s, name); !bytes.Equal(got, data) {
			t.Fatalf("version %d: restored bytes differ", v)
		}
	}
	if deltas < 2 {
		t.Errorf("%d of 4 versions published as deltas, want at least 2 (the first may be full while the copier learns the store's version scheme)", deltas)
	}
}

// TestPacks_CorruptPackIsAnError: a flipped byte in one record, a
// truncated pack and a missing pack fail the restore and the chunk read
// (the replica path); no bytes are returned as data.
func TestPacks_CorruptPackIsAnError(t *testing.T) {
	const name = "test:corrupt"
	key := names.Key(name)
	setup := func(t *testing.T) (*memStore, *manifest.Manifest, string, manifest.Location) {
		s := newMemStore()
		c, root := packCopier(t, s, 0)
		stageNamed(t, root, key, name, 1, randomBytes(9*testChunk, 8))
		if err := c.Upload(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		m, err := restore.Latest(context.Background(), s, key)
		if err != nil {
			t.Fatal(err)
		}
		l := m.Locs[m.Chunks[4]]
		return s, m, names.PackKey(l.Pack.String()), l
	}
	cases := map[string]func(s *memStore, pk string, l manifest.Location){
		"flipped byte": func(s *memStore, pk string, l manifest.Location) {
			b, _ := s.get(pk)
			b = bytes.Clone(b)
			b[l.Offset+l.Length/2] ^= 0x40
			s.objs[pk] = b
		},
		"truncated": func(s *memStore, pk string, l manifest.Location) {
			b, _ := s.get(pk)
			s.objs[pk] = b[:l.Offset+10]
		},
		"missing": func(s *memStore, pk string, l manifest.Location) { delete(s.objs, pk) },
	}
	for what, damage := range cases {
		t.Run(what, func(t *testing.T) {
			s, m, pk, l := setup(t)
			damage(s, pk, l)
			ctx := context.Background()
			for _, parallel := range []int{1, 4} {
				err := restore.Write(ctx, s, m, &bytesWriterAt{b: make([]byte, m.Length)}, parallel)
				if err == nil {
					t.Fatalf("restore (%d workers) of a damaged pack succeeded", parallel)
				}
				if what == "missing" && !errors.Is(err, blob.ErrNotFound) {
					t.Errorf("missing pack: %v, want not found", err)
				}
				if what != "missing" && !errors.Is(err, manifest.ErrCorrupt) {
					t.Errorf("damaged pack: %v, want corrupt", err)
				}
			}
			data, err := restore.Chunk(ctx, s, m, 4)
			if err == nil || data != nil {
				t.Fatalf("chunk read of a damaged pack: %d bytes, %v", len(data), err)
			}
			if !strings.Contains(err.Error(), l.Pack.String()) && what != "missing" {
				t.Errorf("error does not name the pack: %v", err)
			}
		})
	}
}

// TestPacks_RestartAfterPartialUpload: the copier dies (here: its store
// fails) after some packs of an upload are in the store and before the
// manifest; a new process (nothing known) uploads the version without
// losing a chunk: packed chunks stay staged until a manifest naming
// their locations is published.
func TestPacks_RestartAfterPartialUpload(t *testing.T) {
	s := newMemStore()
	const name = "test:restart"
	key := names.Key(name)
	packs := 0
	s.setFail(func(op, key string) error {
		if op == "put" && strings.HasPrefix(key, "packs/") {
			packs++
			if packs > 1 {
				return blob.ErrPermanent
			}
		}
		return nil
	})
	c, root := newTestCopier(t, s, func(o *Options) { o.PackBytes = 4 * (testChunk + 1); o.ChunkParallelism = 1 })
	data := randomBytes(13*testChunk, 9)
	stageNamed(t, root, key, name, 1, data)
	if err := c.Upload(context.Background(), key); err == nil {
		t.Fatal("upload with a failing store succeeded")
	}
	if n := len(objects(t, s, "packs/")); n != 1 {
		t.Fatalf("%d packs stored before the failure, want 1", n)
	}
	s.setFail(nil)
	c2 := New(Options{SpoolDir: root, Targets: []blob.Store{s}, RateLimit: 10000, PackBytes: 4 * (testChunk + 1)})
	defer c2.Close(context.Background())
	if err := c2.Upload(context.Background(), key); err != nil {
		t.Fatalf("upload by a new process: %v", err)
	}
	if _, got := restored(t, s, name); !bytes.Equal(got, data) {
		t.Fatal("restored bytes differ")
	}
}

// TestPacks_TwoTargets: both targets get the same packs (same keys, same
// offsets), and each restores the version on its own.
func TestPacks_TwoTargets(t *testing.T) {
	s1, s2 := newMemStore(), newMemStore()
	const name = "test:two"
	key := names.Key(name)
	c, root := newTestCopier(t, s1, func(o *Options) { o.Targets = []blob.Store{s1, s2}; o.PackBytes = 0 })
	data := randomBytes(70*testChunk+3, 10)
	stageNamed(t, root, key, name, 1, data)
	if err := c.Upload(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	p1, p2 := objects(t, s1, "packs/"), objects(t, s2, "packs/")
	if len(p1) != 2 || strings.Join(p1, ",") != strings.Join(p2, ",") {
		t.Fatalf("packs %v and %v, want the same 2 in both", p1, p2)
	}
	for _, s := range []*memStore{s1, s2} {
		if _, got := restored(t, s, name); !bytes.Equal(got, data) {
			t.Fatalf("%s: restored bytes differ", s)
		}
	}
}

// TestPacks_LostUploadRecord: the upload record is lost (a power cut
// damaged it) and a new process uploads the next version, whose unstaged
// chunks are in a pack and in no chunk object: it finds them in the
// store's latest manifest (one GET) instead of declaring them lost and
// rescanning the database.
func TestPacks_LostUploadRecord(t *testing.T) {
	s := newMemStore()
	const name = "test:lostrecord"
	key := names.Key(name)
	c, root := packCopier(t, s, 0)
	data := randomBytes(12*testChunk, 11)
	stageNamed(t, root, key, name, 1, data)
	if err := c.Upload(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "dbs", key, "uploaded")); err != nil {
		t.Fatal(err)
	}
	// Version 2 changes chunk 7; like the tracker, only it is staged.
	copy(data[7*testChunk:], randomBytes(40, 12))
	m2 := stageNamed(t, root, key, name, 2, data)
	d, err := spool.Existing(root, key)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range m2.Chunks {
		if i != 7 {
			_ = d.RemoveChunk(h)
		}
	}
	rescans := 0
	c2 := New(Options{SpoolDir: root, Targets: []blob.Store{s}, RateLimit: 10000, OnRescan: func(string) { rescans++ }})
	defer c2.Close(context.Background())
	if err := c2.Upload(context.Background(), key); err != nil {
		t.Fatalf("upload without the record: %v", err)
	}
	if rescans != 0 {
		t.Errorf("%d rescans asked", rescans)
	}
	if _, got := restored(t, s, name); !bytes.Equal(got, data) {
		t.Fatal("restored bytes differ")
	}
}
