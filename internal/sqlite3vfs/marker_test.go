package sqlite3vfs

import (
	"os"
	"regexp"
	"testing"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// The shim creates the rescan marker from C (shim.h); the copier looks for
// spool.RescanMarker: the names must agree.
func TestRescanMarkerMatchesShimH(t *testing.T) {
	src, err := os.ReadFile("shim.h")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`#define VSHIM_RESCAN_MARKER "([^"]+)"`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("shim.h lacks VSHIM_RESCAN_MARKER")
	}
	if string(m[1]) != spool.RescanMarker {
		t.Fatalf("shim.h names the rescan marker %q, spool.RescanMarker is %q", m[1], spool.RescanMarker)
	}
}
