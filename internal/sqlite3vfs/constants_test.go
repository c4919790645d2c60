package sqlite3vfs

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// cDefines returns the #define NAME VALUE lines of a C header.
func cDefines(t *testing.T, file string) map[string]string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^#define (\w+)\s+("[^"]*"|\d+)`).FindAllSubmatch(src, -1) {
		defs[string(m[1])] = string(m[2])
	}
	return defs
}

// TestConstantsMatchShimH: the capture kinds and the header length that
// the C shim passes to Go (shim.h) are the tracker's.
func TestConstantsMatchShimH(t *testing.T) {
	defs := cDefines(t, "shim.h")
	for _, tc := range []struct {
		name string
		want int
	}{
		{"VSHIM_COMMIT", int(tracker.Commit)},
		{"VSHIM_ROLLBACK", int(tracker.Rollback)},
		{"VSHIM_CHECK", int(tracker.Check)},
		{"VSHIM_RESCAN", int(tracker.Rescan)},
		{"VSHIM_HEADER_LEN", tracker.HeaderLen},
	} {
		got, err := strconv.Atoi(defs[tc.name])
		if err != nil || got != tc.want {
			t.Errorf("shim.h: %s is %q, Go says %d", tc.name, defs[tc.name], tc.want)
		}
	}
}
