//go:build cgo && verneuil_extern

package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
)

// TestComposeWALContinues: a walk continued from the last check's (the
// same -wal grown by more frames) composes the same state as a walk from
// the header; a -wal restarted (new header), rewritten before the
// remembered commit frame, cut before it, or a commit asked for before it
// is walked from the header again, never from the stale walk.
func TestComposeWALContinues(t *testing.T) {
	const ps = 512
	db := pages(ps, 'a', 'b', 'c')
	salt := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	path := filepath.Join(t.TempDir(), "db-wal")
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// compose opens path continuing prev, checks the state against a walk
	// from the header, and returns the walk to continue.
	compose := func(prev *walScan, upTo uint32, want walPosition) *walScan {
		t.Helper()
		ref, sc, f, err := openWALRef(db, path, upTo, prev)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := composeWAL(db, bytes.NewReader(raw), int64(len(raw)), upTo)
		if err != nil {
			t.Fatal(err)
		}
		if ref.pos != want || fresh.pos != want {
			t.Fatalf("continued walk at %s, fresh walk at %s, want %s", ref.pos, fresh.pos, want)
		}
		if got, exp := readAll(t, ref), readAll(t, fresh); !bytes.Equal(got, exp) {
			t.Fatalf("continued state differs from the fresh one at byte %d", firstDiff(got, exp))
		}
		return sc
	}

	w := newTestWAL(ps, false, salt)
	w.frame(2, 'x', 0)
	c1 := w.frame(4, 'y', 4)
	write(w.buf.Bytes())
	sc := compose(nil, 0, c1)

	// Grown: continued from c1; page 2's copy from before c1 still counts.
	w.frame(3, 'z', 0)
	c2 := w.frame(1, 'w', 4)
	w.frame(2, 'u', 0) // uncommitted tail
	write(w.buf.Bytes())
	if unchecked := compose(sc, 0, c2); unchecked.changed != nil {
		t.Fatal("a walk continuing an unchecked one reports changed pages: its chunks would be skipped")
	}
	sc.checked = true
	sc2 := compose(sc, 0, c2)
	if sc2.pos != c2 {
		t.Fatalf("walk remembered at %s, want %s", sc2.pos, c2)
	}
	if want := map[uint32]bool{3: true, 1: true}; !maps.Equal(sc2.changed, want) {
		t.Fatalf("changed pages %v, want %v (the committed frames after c1)", sc2.changed, want)
	}
	sc2.checked = true
	// The tail is overwritten by a commit: continued from c2.
	grown := w.buf.Bytes()[:refWALHeaderLen+int(c2.mx)*(refFrameHeadLen+ps)]
	w2 := newTestWAL(ps, false, salt)
	w2.buf.Reset()
	w2.buf.Write(grown)
	w2.s = c2.ck
	c3 := w2.frame(2, 'v', 3) // shrinks to 3 pages
	write(w2.buf.Bytes())
	sc3 := compose(sc2, 0, c3)

	// A commit asked for before the remembered one: from the header.
	compose(sc3, c1.mx, c1)

	// Rewritten before the remembered commit (same header, other frames):
	// the remembered commit frame no longer matches.
	w4 := newTestWAL(ps, false, salt)
	w4.frame(2, 'p', 0)
	w4.frame(4, 'q', 4)
	w4.frame(3, 'r', 0)
	c4 := w4.frame(1, 's', 4)
	w4.frame(2, 't', 0)
	c4b := w4.frame(3, 'o', 4)
	write(w4.buf.Bytes())
	if c4.mx != c3.mx-1 || c4b.mx != c3.mx+1 {
		t.Fatalf("test WAL positions %d %d against %d", c4.mx, c4b.mx, c3.mx)
	}
	compose(sc3, 0, c4b)

	// Restarted with new salts (a new header): from the header.
	w5 := newTestWAL(ps, false, [8]byte{9, 9, 9, 9, 9, 9, 9, 9})
	c5 := w5.frame(1, 'n', 3)
	write(w5.buf.Bytes())
	compose(sc3, 0, c5)

	// Cut before the remembered commit frame: from the header.
	write(w.buf.Bytes()[:refWALHeaderLen+int(c1.mx)*(refFrameHeadLen+ps)])
	compose(sc2, 0, c1)
}

// TestCompareReadsChangedChunksOnly: with the chunks a continued walk
// changed, the comparison skips the others whose replica hash is the one
// it compared last time, and still compares chunk 0, the last chunk, the
// changed chunks (a wrong byte there is a mismatch) and any chunk whose
// replica hash moved (fetched from the store: here an empty one, so
// comparing it is an error).
func TestCompareReadsChangedChunksOnly(t *testing.T) {
	const cs = 1024
	state := make([]byte, 4*cs)
	for i := range state {
		state[i] = byte(i / cs * 7)
	}
	chunk := func(b []byte, i int) []byte { return b[i*cs : (i+1)*cs] }
	replica := func(b []byte) *manifest.Manifest {
		m := &manifest.Manifest{Seq: 5, ChunkSize: cs, Length: int64(len(b)), Chunk0: chunk(b, 0)}
		for i := range 4 {
			m.Chunks = append(m.Chunks, manifest.HashOf(chunk(b, i)))
		}
		return m
	}
	store, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	newChecker := func() *checker {
		c := &checker{store: store, cache: map[string][]cachedChunk{"k": make([]cachedChunk, 4)}}
		for i := 1; i < 4; i++ {
			c.cache["k"][i] = cachedChunk{manifest.HashOf(chunk(state, i)), bytes.Clone(chunk(state, i))}
		}
		return c
	}
	only := func(n int) func(int) bool { return func(i int) bool { return i == n } }
	ctx := context.Background()

	c := newChecker()
	if err := c.compare(ctx, "k", replica(state), int64(len(state)), memDB(state).ReadAt, nil, only(1)); err != nil {
		t.Fatal(err)
	}
	if c.stats.bytesUnchanged != cs || c.stats.bytes != 3*cs {
		t.Fatalf("compared %d bytes, skipped %d: want chunk 2 skipped only", c.stats.bytes, c.stats.bytesUnchanged)
	}

	wrong := bytes.Clone(state)
	wrong[cs+5] ^= 1 // the state moved on in chunk 1, the replica did not
	err = newChecker().compare(ctx, "k", replica(state), int64(len(state)), memDB(wrong).ReadAt, nil, only(1))
	if err == nil || !strings.Contains(err.Error(), "chunk 1") {
		t.Fatalf("a wrong byte in a changed chunk: got %v", err)
	}

	moved := bytes.Clone(state)
	moved[2*cs] ^= 1 // the replica's chunk 2 has another hash: not skipped
	err = newChecker().compare(ctx, "k", replica(moved), int64(len(state)), memDB(state).ReadAt, nil, only(1))
	if err == nil || !strings.Contains(err.Error(), "replica version 5") {
		t.Fatalf("a chunk whose replica hash moved: got %v, want its fetch from the store to fail", err)
	}
}
