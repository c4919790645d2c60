package replica_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// TestInlineHostileLatest: after a good version, the store's latest
// becomes an object whose inline chunk does not match its hash (a hostile
// or damaged answer). A refresh reports the corruption and keeps the
// version already loaded, which still reads its own bytes; once a good
// latest carrying a chunk inline replaces it, the replica moves to it and
// reads the inline chunk.
func TestInlineHostileLatest(t *testing.T) {
	s := newStore(t)
	d100 := randomData(1, 4)
	m100 := publish(t, s, 100, d100, true)
	mg := newManager(t, s)
	src := open(t, mg, dbKey, "", "")
	if got := readAll(t, src); !bytes.Equal(got, d100) {
		t.Fatal("version 100 does not read its data")
	}
	d101 := withChunk(d100, 2, 0x5a)
	c2 := d101[2*chunkSize : 3*chunkSize]
	put := func(inline []byte) {
		t.Helper()
		m := *m100
		m.Seq = 101
		m.Chunks = append([]manifest.Hash(nil), m100.Chunks...)
		m.Chunks[2] = manifest.HashOf(c2)
		m.Inline = map[manifest.Hash][]byte{m.Chunks[2]: inline}
		enc, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(context.Background(), names.LatestKey(dbKey), enc); err != nil {
			t.Fatal(err)
		}
	}
	put(withChunk(d100, 2, 0x5b)[2*chunkSize : 3*chunkSize]) // other bytes
	cur, err := src.Current(true)
	if !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("refresh to the hostile latest: %v, want a corruption error", err)
	}
	if cur.Seq != 100 {
		t.Fatalf("after a failed refresh the replica is at version %d, want 100", cur.Seq)
	}
	if got := readAll(t, src); !bytes.Equal(got, d100) {
		t.Fatal("version 100 reads other bytes after a hostile refresh")
	}
	put(c2)
	if cur, err := src.Current(true); err != nil || cur.Seq != 101 || len(cur.Inline) != 1 {
		t.Fatalf("refresh to the good latest: version %d, %d inline, %v", cur.Seq, len(cur.Inline), err)
	}
	if got := readAll(t, src); !bytes.Equal(got, d101) {
		t.Fatal("version 101 does not read its data (chunk 2 inline)")
	}
}
