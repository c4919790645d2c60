package blobtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// testLifecycle checks what garbage collection relies on: Walk (pages,
// prefixes, sizes and times), Stat and Touch.
func testLifecycle(t *testing.T, s blob.Store) {
	ls, ok := s.(blob.Lifecycle)
	if !ok {
		t.Fatalf("%T does not implement blob.Lifecycle", s)
	}
	ctx := ctxFor(t)
	before := time.Now().Add(-2 * time.Second)
	const n = 1100 // more than one S3 page
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("life/a/%05d", i))
	}
	parallel(t, 16, want, func(ctx context.Context, k string) error {
		return s.Put(ctx, k, []byte(k+"!"))
	})
	mustPut(t, s, "life/b/x", []byte("other"))
	mustPut(t, s, "lifeline", []byte("outside"))
	after := time.Now().Add(2 * time.Second)

	walk := func(prefix string) []blob.ObjectInfo {
		t.Helper()
		var got []blob.ObjectInfo
		err := ls.Walk(ctx, prefix, func(page []blob.ObjectInfo) error {
			if len(page) == 0 || len(page) > 1000 {
				t.Errorf("Walk(%q): page of %d objects", prefix, len(page))
			}
			got = append(got, page...)
			return nil
		})
		if err != nil {
			t.Fatalf("Walk(%q): %v", prefix, err)
		}
		slices.SortFunc(got, func(a, b blob.ObjectInfo) int {
			switch {
			case a.Key < b.Key:
				return -1
			case a.Key > b.Key:
				return 1
			}
			return 0
		})
		return got
	}
	got := walk("life/a/")
	var keys []string
	for _, o := range got {
		keys = append(keys, o.Key)
		if o.Size != int64(len(o.Key)+1) || o.ModTime.Before(before) || o.ModTime.After(after) {
			t.Fatalf("Walk: %+v: want size %d and a time between %s and %s", o, len(o.Key)+1, before, after)
		}
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("Walk(life/a/): %d keys, want %d", len(keys), len(want))
	}
	if got := walk("life/a/0100"); len(got) != 10 || got[0].Key != "life/a/01000" {
		t.Fatalf("Walk(life/a/0100): %d objects", len(got))
	}
	if got := walk("life"); len(got) != n+2 {
		t.Fatalf("Walk(life): %d objects, want %d", len(got), n+2)
	}
	if got := walk("nothing/"); len(got) != 0 {
		t.Fatalf("Walk(nothing/): %d objects", len(got))
	}
	stop := errors.New("stop")
	calls := 0
	if err := ls.Walk(ctx, "life/a/", func([]blob.ObjectInfo) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk with a failing callback: %v after %d calls", err, calls)
	}

	info, err := ls.Stat(ctx, "life/b/x")
	if err != nil || info.Size != 5 || info.Key != "life/b/x" || info.ModTime.Before(before) || info.ModTime.After(after) {
		t.Fatalf("Stat: %+v, %v", info, err)
	}
	if _, err := ls.Stat(ctx, "life/b/missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat of a missing object: %v", err)
	}

	tt, ok := s.(blob.Toucher)
	if !ok {
		t.Fatalf("%T does not implement blob.Toucher", s)
	}
	if err := tt.Touch(ctx, "life/b/missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Touch of a missing object: %v", err)
	}
	if err := tt.Touch(ctx, "life/b/x"); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if data, err := s.Get(ctx, "life/b/x"); err != nil || string(data) != "other" {
		t.Fatalf("Get after Touch: %q, %v", data, err)
	}
	if info2, err := ls.Stat(ctx, "life/b/x"); err != nil || info2.ModTime.Before(info.ModTime) {
		t.Fatalf("Stat after Touch: %+v (was %+v), %v", info2, info, err)
	}
}
