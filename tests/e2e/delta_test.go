//go:build cgo

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestDeltaManifestsThroughGC: one-row transactions replicate mostly as
// delta manifests; gc --keep-last 1 keeps the latest and its base, and
// the database still restores byte-identically.
func TestDeltaManifestsThroughGC(t *testing.T) {
	s := newSetup(t)
	// Every version in history: the test counts deltas among them (with
	// history_interval, the history holds mostly new bases).
	s.withConfig(map[string]any{"upload_interval": "20ms", "history_interval": "0s",
		"retention": map[string]any{"keep_all": "1s", "hourly": "1s", "daily": "1s"}})
	db := filepath.Join(s.dir, "delta.db")
	w := s.writer("count", db, "VERNEUIL_E2E_N=1000")
	if out, err := w.Output(); err != nil {
		t.Fatalf("writer: %v: %s", err, out)
	}
	store := s.openStore()
	ctx := context.Background()
	key := strings.TrimSpace(s.mustCtl("manifest-name", db))
	seqs, err := restore.Versions(ctx, store, key)
	if err != nil {
		t.Fatal(err)
	}
	deltas := 0
	for _, seq := range seqs {
		obj, err := store.Get(ctx, names.ManifestKey(key, seq))
		if err != nil {
			t.Fatal(err)
		}
		if _, d, err := manifest.DecodeObject(obj); err != nil {
			t.Fatalf("version %d: %v", seq, err)
		} else if d != nil {
			deltas++
		}
	}
	if deltas == 0 || deltas*2 < len(seqs) {
		t.Fatalf("%d delta manifests among %d versions; want most", deltas, len(seqs))
	}
	out := filepath.Join(s.dir, "restored.db")
	s.mustCtl("restore", db, "--out", out)
	if got, want := testutil.FileSHA256(t, out), testutil.FileSHA256(t, db); got != want {
		t.Fatalf("restore differs from the database")
	}
	_, latest, err := restore.LatestDelta(ctx, store, key)
	if err != nil {
		t.Fatal(err)
	}
	s.mustCtl("gc", "--keep-last", "1", "--grace", "0")
	time.Sleep(1500 * time.Millisecond) // past the configured policy's windows, for list
	if missing, unref := gctest.Missing(t, store); len(missing) != 0 || len(unref) != 0 {
		t.Fatalf("after gc: missing %v, unreferenced %v", missing, unref)
	}
	var versions []struct {
		Version  string `json:"version"`
		Retained string `json:"retained"`
	}
	if err := json.Unmarshal([]byte(s.mustCtl("--json", "list", "--versions", db)), &versions); err != nil {
		t.Fatal(err)
	}
	want := 1
	if latest != nil {
		want = 2
		if len(versions) != 2 || versions[0].Version != fmt.Sprint(latest.BaseSeq) || !strings.HasPrefix(versions[0].Retained, "base of") ||
			versions[1].Retained != "latest" {
			t.Fatalf("list --versions after gc --keep-last 1: %+v; want the base %d and latest", versions, latest.BaseSeq)
		}
	}
	if len(versions) != want {
		t.Fatalf("list --versions after gc --keep-last 1: %+v", versions)
	}
	for _, v := range versions {
		out := filepath.Join(s.dir, "v.db")
		os.Remove(out)
		s.mustCtl("restore", db, "--version", v.Version, "--out", out)
		testutil.IntegrityCheck(t, out)
	}
	os.Remove(out)
	s.mustCtl("restore", db, "--out", out)
	if got, want := testutil.FileSHA256(t, out), testutil.FileSHA256(t, db); got != want {
		t.Fatalf("restore after gc differs from the database")
	}
	t.Logf("%d versions, %d deltas; latest a delta: %v", len(seqs), deltas, latest != nil)
}
