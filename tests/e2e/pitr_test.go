//go:build cgo

package e2e

import (
	"encoding/json"
	"github.com/verneuil-go/verneuil/internal/testutil"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestPointInTimeRestore: every uploaded version stays restorable, by
// version number and by time.
func TestPointInTimeRestore(t *testing.T) {
	s := newSetup(t)
	db := filepath.Join(s.dir, "pitr.db")
	var marks []time.Time
	for i := range 3 {
		// Each writer run commits 10 rows and flushes before exiting.
		if err := s.writer("count", db, "VERNEUIL_E2E_N=10", "VERNEUIL_E2E_SEED="+strconv.Itoa(i)).Run(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		marks = append(marks, time.Now())
		time.Sleep(20 * time.Millisecond)
	}
	var versions []struct {
		Version    uint64    `json:"version,string"`
		CommitTime time.Time `json:"commit_time"`
	}
	if err := json.Unmarshal([]byte(s.mustCtl("--json", "list", "--versions", db)), &versions); err != nil {
		t.Fatal(err)
	}
	if len(versions) < 3 {
		t.Fatalf("%d versions listed, want at least 3", len(versions))
	}
	for i, mark := range marks {
		out := filepath.Join(s.dir, "at"+strconv.Itoa(i)+".db")
		s.mustCtl("restore", db, "--at", mark.UTC().Format(time.RFC3339Nano), "--out", out)
		testutil.IntegrityCheck(t, out)
		if n, want := countRows(t, out, "1"), 10*(i+1); n != want {
			t.Fatalf("restore --at mark %d: %d rows, want %d", i, n, want)
		}
	}
	first := filepath.Join(s.dir, "first.db")
	s.mustCtl("restore", db, "--version", strconv.FormatUint(versions[0].Version, 10), "--out", first)
	testutil.IntegrityCheck(t, first)
	_, errOut, code := s.ctl("restore", db, "--at", marks[0].Add(-time.Hour).UTC().Format(time.RFC3339), "--out", first)
	if code == 0 {
		t.Fatalf("restore before the first version succeeded")
	}
	t.Logf("restore before the first version: %s", errOut)
}
