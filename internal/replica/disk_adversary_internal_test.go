package replica

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// A lookup of a cached chunk at a length other than its own (a corrupt or
// hostile manifest: one hash, one content, one length) misses without
// harm: the record stays indexed for the readers of the right length, and
// no warning calls a sound record damaged.
func TestDiskCacheLookupAtOtherLengthKeepsRecord(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c, err := newDiskCache(t.TempDir(), 1<<20, log)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{7}, 4096)
	h := manifest.HashOf(data)
	c.put(h, data)
	for _, n := range []int{8192, 2048} {
		if _, ok := c.get(h, n); ok {
			t.Fatalf("a %d-byte chunk served for a %d-byte lookup", len(data), n)
		}
	}
	got, ok := c.get(h, len(data))
	if !ok || !bytes.Equal(got, data) {
		t.Fatalf("the record was dropped by lookups at other lengths (hit %v)", ok)
	}
	if strings.Contains(logs.String(), "does not match") {
		t.Errorf("a sound record reported as damaged: %s", logs.String())
	}
}
