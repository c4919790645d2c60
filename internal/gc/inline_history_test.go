package gc_test

import (
	"context"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// TestInlineLatestWithHistoryObject: a version published as latest only
// with a chunk inline got its history object later (its interval ended,
// or a flush), which stored the chunk as a chunk object first; latest
// still is the object carrying it inline (an idle database). A collection
// a day later must keep that chunk object: the history object, which
// retention keeps, references it, even though latest needs no chunk
// object for it. Once the next version is published, the history object
// must still restore.
func TestInlineLatestWithHistoryObject(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	f := &gctest.Fixture{Data: map[string]map[uint64][]byte{}}
	name := gctest.Name(0)
	key := names.Key(name)
	data := make([]byte, 4*gctest.ChunkSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	f.Put(t, s, name, 1000, data)

	// Version 1001 changes chunk 2: its history object and chunk object,
	// and latest carrying the chunk inline.
	data[2*gctest.ChunkSize+5] ^= 0xff
	data[40] = 1
	m := f.Put(t, s, name, 1001, data) // chunk object, history object, plain latest
	x := m.Chunks[2]
	withInline := *m
	withInline.Inline = map[manifest.Hash][]byte{x: append([]byte(nil), data[2*gctest.ChunkSize:3*gctest.ChunkSize]...)}
	enc, err := withInline.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, names.LatestKey(key), enc); err != nil {
		t.Fatal(err)
	}
	if l, err := restore.Latest(ctx, s, key); err != nil || l.Inline[x] == nil {
		t.Fatalf("latest does not carry chunk 2 inline: %v", err)
	}
	age(t, s, 48*time.Hour) // an idle day and more
	sum, err := gc.Run(ctx, s, gc.Options{Grace: 24 * time.Hour, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if missing, _ := gctest.Missing(t, s); len(missing) > 0 {
		t.Fatalf("the collection (deleted %d chunks) left stored manifests lacking chunks: %v", sum.ChunksDeleted, missing)
	}
	// The next version moves on; version 1001 stays in history.
	data[2*gctest.ChunkSize+6] ^= 0xff
	data[40] = 2
	f.Put(t, s, name, 1002, data)
	v, err := restore.Version(ctx, s, key, 1001)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Chunk(ctx, s, v, 2); err != nil {
		t.Fatalf("version 1001 no longer restores: %v", err)
	}
}
