package blobtest

import (
	"errors"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// RunGetTagged checks a blob.TaggedGetter: the conditional read answers
// not-modified while the tag is the known one, returns the new bytes and
// tag after a Put, and its tags are the ones Tag returns.
func RunGetTagged(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	tg, ok := s.(blob.TaggedGetter)
	if !ok {
		t.Fatalf("%T does not implement blob.TaggedGetter", s)
	}
	if _, _, err := tg.GetTagged(ctx, "gettagged/missing", ""); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("GetTagged(missing) = %v, want ErrNotFound", err)
	}
	mustPut(t, s, "gettagged/k", []byte("version one"))
	data, tag1, err := tg.GetTagged(ctx, "gettagged/k", "")
	if err != nil || tag1 == "" || string(data) != "version one" {
		t.Fatalf("GetTagged = %q, %q, %v", data, tag1, err)
	}
	if tag, err := blob.Tag(ctx, s, "gettagged/k", ""); err != nil || tag != tag1 {
		t.Fatalf("Tag = %q, %v; GetTagged gave tag %q", tag, err, tag1)
	}
	if data, _, err := tg.GetTagged(ctx, "gettagged/k", tag1); !errors.Is(err, blob.ErrNotModified) || data != nil {
		t.Fatalf("GetTagged(unchanged) = %q, %v; want no data and ErrNotModified", data, err)
	}
	mustPut(t, s, "gettagged/k", []byte("version two"))
	data, tag2, err := tg.GetTagged(ctx, "gettagged/k", tag1)
	if err != nil || tag2 == tag1 || string(data) != "version two" {
		t.Fatalf("GetTagged after Put = %q, %q, %v; want the new bytes and a new tag (old %q)", data, tag2, err, tag1)
	}
	if _, err := blob.Tag(ctx, s, "gettagged/k", tag2); !errors.Is(err, blob.ErrNotModified) {
		t.Fatalf("Tag(tag from GetTagged) = %v, want ErrNotModified", err)
	}
	if _, _, err := blob.GetTagged(ctx, s, "gettagged/k", tag2); !errors.Is(err, blob.ErrNotModified) {
		t.Fatalf("blob.GetTagged(unchanged) = %v, want ErrNotModified", err)
	}
}
