package copier

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/replica"
)

// TestInline_ReplicaAcrossVersions: a read replica (the snapshot VFS's
// source, with its disk cache) follows the copier across many versions of
// every kind (history objects full and delta, latest only with chunks
// inline, over the inline bound). After each commit it refreshes and reads
// every chunk of the new version, and an old version held since an
// earlier commit (a long read transaction) still reads its own bytes,
// including the chunks its latest object carried inline, after latest
// moved on.
func TestInline_ReplicaAcrossVersions(t *testing.T) {
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	db := newInlineDB(t, s, "rep") // history objects by flushes below
	states := map[uint64][]byte{db.seq: append([]byte(nil), db.data...)}
	mg, err := replica.New(replica.Options{Store: s, CacheDir: filepath.Join(t.TempDir(), "cache"), Hostname: "h", RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg.Wait)
	tg, err := mg.Resolve(K("rep"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	src, err := mg.Open(tg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mg.Close(src) })
	read := func(m *manifest.Manifest) []byte {
		t.Helper()
		var out []byte
		for i := range m.Chunks {
			c, err := src.ReadChunk(m.Seq, i)
			if err != nil {
				t.Fatalf("version %d chunk %d: %v", m.Seq, i, err)
			}
			out = append(out, c...)
		}
		return out
	}
	var held *manifest.Manifest
	inlined := 0
	r := rand.New(rand.NewPCG(31, 32))
	for i := range 30 {
		n := 1 + r.IntN(2)
		if i%6 == 5 {
			n = 6
		}
		changed := make([]int, n)
		for j := range changed {
			changed[j] = 1 + r.IntN(7)
		}
		db.commit(changed...)
		states[db.seq] = append([]byte(nil), db.data...)
		if i%4 == 3 {
			// A flush: its history object (a new delta base).
			if err := db.c.Upload(context.Background(), K("rep")); err != nil {
				t.Fatal(err)
			}
		}
		m := src.HoldCurrent(true, 0)
		if len(m.Inline) > 0 {
			inlined++
		}
		want, ok := states[m.Seq]
		if !ok {
			t.Fatalf("the replica reads version %d, never staged", m.Seq)
		}
		if !bytes.Equal(read(m), want) {
			t.Fatalf("the replica reads other bytes for version %d", m.Seq)
		}
		if held == nil && len(m.Inline) > 0 && i > 3 {
			held = m // kept held to the end
			continue
		}
		src.Release(m.Seq)
		if held != nil && !bytes.Equal(read(held), states[held.Seq]) {
			t.Fatalf("held version %d reads other bytes at version %d", held.Seq, db.seq)
		}
	}
	src.Wait()
	if inlined == 0 || held == nil {
		t.Fatal("the replica never read a latest with inline chunks: the test exercised nothing new")
	}
	src.Release(held.Seq)
}
