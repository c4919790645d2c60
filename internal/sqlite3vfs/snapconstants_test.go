package sqlite3vfs

import (
	"strconv"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// TestConstantsMatchSnapshotH: the chunk-hash and header lengths that the
// read-replica VFS's C side (snapshot.h) uses are the Go side's.
func TestConstantsMatchSnapshotH(t *testing.T) {
	defs := cDefines(t, "snapshot.h")
	for _, tc := range []struct {
		name string
		want int
	}{
		{"VSNAP_HASH_LEN", manifest.HashSize},
		{"VSNAP_HEADER_LEN", tracker.HeaderLen},
	} {
		got, err := strconv.Atoi(defs[tc.name])
		if err != nil || got != tc.want {
			t.Errorf("snapshot.h: %s is %q, Go says %d", tc.name, defs[tc.name], tc.want)
		}
	}
}
