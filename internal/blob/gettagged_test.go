package blob_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
)

// tagOnly hides the store's TaggedGetter: it has Tag (counted) and Get
// (counted) only.
type tagOnly struct {
	s          *fileblob.Store
	blob.Store // for the other methods
	tags, gets atomic.Int64
}

func (t *tagOnly) Tag(ctx context.Context, key, known string) (string, error) {
	t.tags.Add(1)
	return t.s.Tag(ctx, key, known)
}

func (t *tagOnly) Get(ctx context.Context, key string) ([]byte, error) {
	t.gets.Add(1)
	return t.s.Get(ctx, key)
}

// plain has neither Tag nor GetTagged.
type plain struct{ blob.Store }

// blob.GetTagged on stores without TaggedGetter: Tag then Get only when
// the tag changed; without TagChecker, always the object and tag "".
func TestGetTaggedFallback(t *testing.T) {
	ctx := context.Background()
	fs, err := fileblob.OpenDir(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Put(ctx, "k", []byte("one")); err != nil {
		t.Fatal(err)
	}
	to := &tagOnly{s: fs, Store: plain{fs}}
	data, tag, err := blob.GetTagged(ctx, to, "k", "")
	if err != nil || string(data) != "one" || tag == "" || to.tags.Load() != 1 || to.gets.Load() != 1 {
		t.Fatalf("first read: %q, %q, %v (%d tags, %d gets)", data, tag, err, to.tags.Load(), to.gets.Load())
	}
	if _, _, err := blob.GetTagged(ctx, to, "k", tag); !errors.Is(err, blob.ErrNotModified) || to.gets.Load() != 1 {
		t.Fatalf("unchanged: %v (%d gets, want no new one)", err, to.gets.Load())
	}
	if _, _, err := blob.GetTagged(ctx, to, "missing", ""); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("missing: %v, want ErrNotFound", err)
	}
	data, tag, err = blob.GetTagged(ctx, plain{fs}, "k", "anything")
	if err != nil || string(data) != "one" || tag != "" {
		t.Fatalf("without TagChecker: %q, %q, %v; want the object and no tag", data, tag, err)
	}
}
