package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestCatchUp: a process commits while its target is missing and exits
// with its flush failing; catchUp creates the target and drains the spool
// with verneuilctl, after which the replica is the database. Without an
// outage (the target exists), catchUp refuses.
func TestCatchUp(t *testing.T) {
	root, err := moduleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	vern := &pass{mode: "verneuil", dir: filepath.Join(dir, "verneuil"), outage: true}
	tmp := filepath.Join(vern.dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := verneuil.LoadConfig(vern.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := verneuil.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(tmp, "app.db")
	db, err := sql.Open("sqlite3", path) // make_default: no vfs= needed
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE t(v)", "INSERT INTO t VALUES (randomblob(100000))"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	ferr := r.Flush(ctx)
	if ferr == nil || !strings.Contains(ferr.Error(), "target unavailable") {
		t.Fatalf("flush with the target missing: %v", ferr)
	}
	vern.report = harnessReport{Mode: "verneuil", Probe: "ok", FlushError: ferr.Error(), complete: true}
	r.Close(ctx) // fails too: the target is missing

	if problems := catchUp(envOr("GO", "go"), root, vern); len(problems) != 0 {
		t.Fatalf("catchUp: %q", problems)
	}
	checks, err := checkReplicas(ctx, replicaLayout{Store: testutil.OpenFileStore(t, filepath.Join(vern.dir, "store")), Host: replicaHost, Tmp: tmp, Keep: filepath.Join(vern.dir, "keep")})
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 1 || checks[0].Status != replicaEqual || checks[0].Local != path {
		t.Fatalf("checks after the catch-up = %+v", checks)
	}
	if problems := catchUp(envOr("GO", "go"), root, vern); len(problems) != 1 || !strings.Contains(problems[0], "exists after the suite") {
		t.Fatalf("catchUp with the target present: %q", problems)
	}
}
