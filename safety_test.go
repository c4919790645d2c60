package verneuil_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// startFor starts replication of dir's spool to the local target store,
// closed at the end of the test unless closed before.
func startFor(t *testing.T, dir, store string) (*replicator.Replicator, *config.Config) {
	t.Helper()
	cfg := &config.Config{
		SpoolDir: filepath.Join(dir, "spool"),
		Targets:  []config.Target{{URL: config.FileURL(store)}},
		LogLevel: "error",
		Hostname: "testhost",
	}
	cfg.ApplyDefaults()
	cfg.ScanInterval = config.Duration(time.Hour)
	r, err := replicator.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r.Close(ctx)
	})
	return r, cfg
}

func openVFS(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// restoreMatches flushes r and checks that the replica of path in r's first
// target is byte-identical to the file.
func restoreMatches(t *testing.T, r *replicator.Replicator, cfg *config.Config, path string) {
	t.Helper()
	ctx := context.Background()
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	_, key, err := replicator.ReplicaName(cfg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	testutil.RestoreCompare(t, r.Targets()[0], key, path)
}

// TestRegression_SwitchTargetKeepsSpool: switching the target while keeping
// spool_dir gives the new target a complete version at the first flush.
func TestRegression_SwitchTargetKeepsSpool(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "switch.db")
	r1, cfg1 := startFor(t, dir, a)
	db := openVFS(t, path)
	mustExec(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
	for range 100 {
		mustExec(t, db, "INSERT INTO t(b) VALUES(randomblob(3000))")
	}
	restoreMatches(t, r1, cfg1, path)
	db.Close()
	if err := r1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	r2, cfg2 := startFor(t, dir, b)
	db = openVFS(t, path)
	mustExec(t, db, "INSERT INTO t(b) VALUES(randomblob(100))")
	restoreMatches(t, r2, cfg2, path)
}

// TestRegression_MissingTargetAtStart: a local target whose directory is
// missing (an unmounted volume) does not stop the application: Start
// succeeds, writes proceed, flushes report the target, and replication
// catches up once the directory appears.
func TestRegression_MissingTargetAtStart(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "mnt", "store")
	r, cfg := startFor(t, dir, store)
	path := filepath.Join(dir, "app.db")
	db := openVFS(t, path)
	mustExec(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
	for range 20 {
		mustExec(t, db, "INSERT INTO t(b) VALUES(randomblob(3000))")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), store) || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("flush with the target missing: %v, want an error naming %s", err, store)
	}
	// What `verneuilctl status` shows, from any process.
	_, key, err := replicator.ReplicaName(cfg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := spool.Existing(cfg.SpoolDir, key)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := d.ReadLastError(); err != nil || rec == nil || !strings.Contains(rec.Message, store) {
		t.Fatalf("spool's last_error = %+v, %v; want the missing target", rec, err)
	}
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	restoreMatches(t, r, cfg, path)
}
