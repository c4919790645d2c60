package blobtest

import (
	"errors"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// RunTag checks a store's blob.TagChecker: a tag for an existing object,
// ErrNotModified while it is unchanged, a new tag after each Put (even of
// the same length), ErrNotFound for a missing object.
func RunTag(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	tc, ok := s.(blob.TagChecker)
	if !ok {
		t.Fatalf("%T does not implement blob.TagChecker", s)
	}
	if _, err := tc.Tag(ctx, "tag/missing", ""); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Tag(missing) = %v, want ErrNotFound", err)
	}
	mustPut(t, s, "tag/k", []byte("version one"))
	tag1, err := tc.Tag(ctx, "tag/k", "")
	if err != nil || tag1 == "" {
		t.Fatalf("Tag = %q, %v", tag1, err)
	}
	if _, err := tc.Tag(ctx, "tag/k", tag1); !errors.Is(err, blob.ErrNotModified) {
		t.Fatalf("Tag(unchanged) = %v, want ErrNotModified", err)
	}
	mustPut(t, s, "tag/k", []byte("version two"))
	tag2, err := tc.Tag(ctx, "tag/k", tag1)
	if err != nil || tag2 == tag1 {
		t.Fatalf("Tag after Put = %q, %v; want a new tag (old %q)", tag2, err, tag1)
	}
	if _, err := tc.Tag(ctx, "tag/k", tag2); !errors.Is(err, blob.ErrNotModified) {
		t.Fatalf("Tag(unchanged) = %v, want ErrNotModified", err)
	}
	// The helper: a store without TagChecker gives "" and no error.
	if tag, err := blob.Tag(ctx, s, "tag/k", tag2); !errors.Is(err, blob.ErrNotModified) || tag != tag2 {
		t.Fatalf("blob.Tag = %q, %v", tag, err)
	}
}
