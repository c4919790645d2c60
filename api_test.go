package verneuil_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// publicConfig writes the JSON configuration an application would pass:
// a spool and a local target under dir.
func publicConfig(t *testing.T, dir string) string {
	t.Helper()
	doc, err := json.Marshal(map[string]any{
		"spool_dir":     filepath.Join(dir, "spool"),
		"targets":       []map[string]string{{"url": "file://" + testutil.MkdirAll(t, filepath.Join(dir, "store"))}},
		"hostname":      "apphost",
		"log_level":     "error",
		"scan_interval": "1h",
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

// TestPublicAPIReplicates drives replication through the public API only
// (LoadConfig, Start, VFSName, FlushDB, Flush, Stats, DBStats, Close) and
// checks the replica byte for byte.
func TestPublicAPIReplicates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg, err := verneuil.LoadConfig(publicConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	// The effective configuration prints as JSON that loads back.
	if again, err := verneuil.LoadConfig(cfg.String()); err != nil || again.String() != cfg.String() {
		t.Fatalf("String does not round-trip: %v\n%s\n%v", err, cfg, again)
	}
	r, err := verneuil.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			r.Close(context.Background())
		}
	})
	if _, err := verneuil.Start(ctx, cfg); err == nil {
		t.Fatal("a second Start while one runs succeeded")
	}

	path := filepath.Join(dir, "app.db")
	db := openPublic(t, path)
	mustExec(t, db, "CREATE TABLE t(x)")
	mustExec(t, db, "INSERT INTO t VALUES (randomblob(200000))")
	if err := r.FlushDB(ctx, path); err != nil {
		t.Fatalf("FlushDB: %v", err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	st := r.Stats()
	if st.Manifests == 0 || st.ChunksUploaded == 0 || st.BytesUploaded == 0 || st.LagN != st.Manifests || st.PendingDatabases != 0 {
		t.Errorf("Stats after a flush: %+v", st)
	}
	var key string
	for _, d := range r.DBStats() {
		if d.Path == path {
			key = d.Key
			if d.Pending || d.LastVersion == 0 || d.Manifests == 0 || d.LastVisible.Before(d.LastCommitTime) {
				t.Errorf("DBStats after a flush: %+v", d)
			}
		}
	}
	if key == "" {
		t.Fatalf("DBStats has no entry for %s: %+v", path, r.DBStats())
	}
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed = true

	testutil.RestoreCompare(t, testutil.OpenFileStore(t, filepath.Join(dir, "store")), key, path)

	// Closed: a new Start is allowed again.
	r2, err := verneuil.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start after Close: %v", err)
	}
	ctx2, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r2.Close(ctx2); err != nil {
		t.Fatal(err)
	}
}

// TestPublicConfigErrors: configuration errors name the offending key.
func TestPublicConfigErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{`{"spool_dirr": "/tmp/x"}`, `"spool_dirr"`},
		{`{"chunk_size": 1000}`, "chunk_size"},
		{`{"targets": [{"url": "ftp://x/y"}]}`, "targets[0].url"},
		{"@" + filepath.Join(t.TempDir(), "missing.json"), "missing.json"},
	} {
		if _, err := verneuil.LoadConfig(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadConfig(%s) = %v, want an error naming %s", tc.spec, err, tc.want)
		}
	}
	t.Setenv("VERNEUIL_CONFIG", `{"copier_workers": 0.5}`)
	if _, err := verneuil.ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "copier_workers") {
		t.Errorf("ConfigFromEnv with a bad value: %v", err)
	}
}
