package gc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// TestInlineLatestHostile: a latest object whose inline chunk does not
// match the hash its manifest gives (a hostile or damaged store answer).
// Restores refuse it with a corruption error naming the chunk; a
// collection a day later counts it unreadable, fails nothing and deletes
// no chunk that a history object needs; the history still restores.
func TestInlineLatestHostile(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	f := &gctest.Fixture{Data: map[string]map[uint64][]byte{}}
	name := gctest.Name(0)
	key := names.Key(name)
	data := make([]byte, 4*gctest.ChunkSize)
	for i := range data {
		data[i] = byte(i * 13)
	}
	f.Put(t, s, name, 1000, data)
	data[40] = 1
	f.Put(t, s, name, 1001, data)
	// Version 1002 as latest only, chunk 2 inline with other bytes.
	m, err := restore.Latest(ctx, s, key)
	if err != nil {
		t.Fatal(err)
	}
	bad := *m
	bad.Seq = 1002
	other := make([]byte, gctest.ChunkSize)
	other[0] = 1
	bad.Chunks = append([]manifest.Hash(nil), m.Chunks...)
	bad.Chunks[2] = manifest.HashOf(append([]byte{2}, other[1:]...))
	bad.Inline = map[manifest.Hash][]byte{bad.Chunks[2]: other}
	enc, err := bad.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, names.LatestKey(key), enc); err != nil {
		t.Fatal(err)
	}
	_, err = restore.Latest(ctx, s, key)
	if !errors.Is(err, manifest.ErrCorrupt) || !strings.Contains(err.Error(), bad.Chunks[2].String()) {
		t.Fatalf("restore of the hostile latest: %v, want a corruption error naming the chunk", err)
	}
	age(t, s, 48*time.Hour)
	sum, err := gc.Run(ctx, s, gc.Options{Grace: 24 * time.Hour, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if sum.ManifestsUnreadable != 1 {
		t.Fatalf("the collection counts %d unreadable manifests, want 1 (latest)", sum.ManifestsUnreadable)
	}
	// (gctest.Missing refuses the corrupt latest: read the history here.)
	seqs, err := restore.Versions(ctx, s, key)
	if err != nil || len(seqs) == 0 {
		t.Fatalf("no history left: %v", err)
	}
	for _, seq := range seqs {
		v, err := restore.Version(ctx, s, key, seq)
		if err != nil {
			t.Fatal(err)
		}
		for i := range v.Chunks {
			if _, err := restore.Chunk(ctx, s, v, i); err != nil {
				t.Fatalf("version %d chunk %d: %v", seq, i, err)
			}
		}
	}
}
