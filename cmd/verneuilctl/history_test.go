package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/verneuil-go/verneuil/internal/names"
)

// TestLatestOnlyVersionCLI: a version that is only the store's latest
// (published without a history object, docs/FORMAT.md) is listed by
// list --versions, marked, restored by --version, and `verneuilctl flush`
// writes its history object.
func TestLatestOnlyVersionCLI(t *testing.T) {
	s := newTestSpool(t)
	path := "/srv/hist.db"
	for _, seq := range []uint64{bigSeq, bigSeq + 1} {
		s.stage(t, path, seq)
		s.mustCtl(t, "flush")
	}
	var key string
	if err := json.Unmarshal([]byte(s.mustCtl(t, "manifest-name", path, "--json")), &struct {
		Key *string `json:"key"`
	}{&key}); err != nil || key == "" {
		t.Fatalf("manifest-name: %q, %v", key, err)
	}
	hist := filepath.Join(s.store, filepath.FromSlash(names.ManifestKey(key, bigSeq+1)))
	if err := os.Remove(hist); err != nil {
		t.Fatal(err) // the copier published it latest only
	}
	var versions []struct {
		Version  string `json:"version"`
		Retained string `json:"retained"`
	}
	if err := json.Unmarshal([]byte(s.mustCtl(t, "list", "--versions", path, "--json")), &versions); err != nil || len(versions) != 2 {
		t.Fatalf("list --versions: %+v, %v; want 2 versions", versions, err)
	}
	if v := versions[1]; v.Version != strconv.FormatUint(bigSeq+1, 10) || v.Retained != "latest only" {
		t.Fatalf("newest listed: %+v, want %d marked latest only", v, bigSeq+1)
	}
	s.mustCtl(t, "restore", path, "--version", versions[1].Version, "--out", filepath.Join(s.dir, "v2.db"))
	s.mustCtl(t, "flush")
	if _, err := os.Stat(hist); err != nil {
		t.Fatalf("flush left the latest version out of history: %v", err)
	}
}
