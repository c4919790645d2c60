package spool

import (
	"slices"
	"testing"
)

// TestPublishRemarksAfterARacingClear: a copier that found the previous
// manifest uploaded removes the marker after this publish checked it
// and before the new manifest is in place (reading its stamp before the
// publish, so ClearDirty does not mark again); Publish's check after
// publishing makes the marker again, so the new version is not left
// unmarked if its writer dies before uploading it.
func TestPublishRemarksAfterARacingClear(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root, "k", Info{Path: "/x", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	m1, enc1 := manifestWith(t, 1)
	if ok, err := d.Publish(m1, enc1); !ok || err != nil {
		t.Fatalf("publish v1: %v %v", ok, err)
	}
	if keys, err := DirtyKeys(root); err != nil || !slices.Equal(keys, []string{"k"}) {
		t.Fatalf("markers after a publish: %v, %v; want [k]", keys, err)
	}
	uploaded, err := d.ManifestStamp()
	if err != nil {
		t.Fatal(err)
	}
	afterMarkHook = func() {
		if err := ClearDirty(root, "k", uploaded); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { afterMarkHook = nil })
	m2, enc2 := manifestWith(t, 2)
	if ok, err := d.Publish(m2, enc2); !ok || err != nil {
		t.Fatalf("publish v2: %v %v", ok, err)
	}
	if keys, err := DirtyKeys(root); err != nil || !slices.Equal(keys, []string{"k"}) {
		t.Fatalf("markers after a publish racing a clear: %v, %v; want [k]", keys, err)
	}
}
