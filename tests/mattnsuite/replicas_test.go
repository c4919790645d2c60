package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

const testHost = "mattn-suite-test"

// replicate writes each database in dbs through verneuil with a few
// transactions, flushes and stops replication.
func replicate(t *testing.T, store, spool string, dbs ...string) {
	t.Helper()
	replicateAs(t, testHost, store, spool, dbs...)
}

// replicateAs is replicate with replica names of host.
func replicateAs(t *testing.T, host, store, spool string, dbs ...string) {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{
		"spool_dir": spool,
		"targets":   []map[string]string{{"url": config.FileURL(store)}},
		"hostname":  host,
		"log_level": "error",
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := verneuil.LoadConfig(string(cfg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := verneuil.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range dbs {
		db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil")
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			"CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
			"INSERT INTO t(v) VALUES (randomblob(5000)), (randomblob(70000))",
			"UPDATE t SET v = randomblob(100) WHERE id = 1",
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %s: %v", path, q, err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCheckReplicas replicates five databases, then puts each in one of
// the states the driver must tell apart, and checks its verdicts.
func TestCheckReplicas(t *testing.T) {
	dir := t.TempDir()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")
	l := replicaLayout{
		Host: testHost,
		Tmp:  filepath.Join(dir, "tmp"),
		Keep: filepath.Join(dir, "keep"),
	}
	for _, d := range []string{storeDir, l.Tmp, l.Keep, filepath.Join(l.Tmp, "sub"), filepath.Join(l.Keep, "sub")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	l.Store = testutil.OpenFileStore(t, storeDir)
	path := func(name string) string { return filepath.Join(l.Tmp, name) }
	replicate(t, storeDir, filepath.Join(dir, "spool"),
		path("inplace.db"), path("sub/kept.db"), path("removed.db"), path("changed.db"), path("corrupt.db"))

	// sub/kept.db: removed by its test after the harness linked it.
	if err := os.Link(path("sub/kept.db"), filepath.Join(l.Keep, "sub/kept.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path("sub/kept.db")); err != nil {
		t.Fatal(err)
	}
	// removed.db: removed before the harness could link it.
	if err := os.Remove(path("removed.db")); err != nil {
		t.Fatal(err)
	}
	// changed.db: written behind verneuil's back after its last capture.
	f, err := os.OpenFile(path("changed.db"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("behind verneuil's back"), 5000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// corrupt.db: the store answers a damaged latest manifest.
	latest := filepath.Join(storeDir, names.LatestKey(names.Key(names.Replica(testHost, path("corrupt.db")))))
	data, err := os.ReadFile(latest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(latest, data, 0o600); err != nil {
		t.Fatal(err)
	}

	counts, err := countStore(context.Background(), l.Store)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Databases != 5 || counts.Latest != 5 || counts.History < 5 {
		t.Errorf("store counts = %+v, want 5 databases, 5 latest, at least 5 history objects", counts)
	}

	checks, err := checkReplicas(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ status, local, detail string }{
		"inplace.db":  {replicaEqual, path("inplace.db"), "bytes"},
		"sub/kept.db": {replicaEqual, filepath.Join(l.Keep, "sub/kept.db"), "bytes"},
		"removed.db":  {replicaGone, "", ""},
		"changed.db":  {replicaDiffers, path("changed.db"), "first at 5000"},
		"corrupt.db":  {replicaError, path("corrupt.db"), ""},
	}
	if len(checks) != len(want) {
		t.Fatalf("%d checks, want %d: %+v", len(checks), len(want), checks)
	}
	for _, c := range checks {
		rel, _ := strings.CutPrefix(c.Name, testHost+":"+l.Tmp+"/")
		w, ok := want[rel]
		if !ok {
			t.Errorf("unexpected replica %s", c.Name)
			continue
		}
		if c.Status != w.status || c.Local != w.local || !strings.Contains(c.Detail, w.detail) {
			t.Errorf("%s: status %q, local %q, detail %q; want %q, %q, detail containing %q",
				rel, c.Status, c.Local, c.Detail, w.status, w.local, w.detail)
		}
	}
}

// TestCheckReplicasForeignHost: a replica of another host in the target
// (a target shared with something else) is an error, not a match.
func TestCheckReplicasForeignHost(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	key := names.Key(names.Replica("elsewhere", "/data/app.db"))
	writeFiles(t, filepath.Join(store, "dbs", key), map[string]string{"latest": "a manifest"})
	checks, err := checkReplicas(context.Background(), replicaLayout{Store: testutil.OpenFileStore(t, store), Host: testHost, Tmp: dir, Keep: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 1 || checks[0].Status != replicaError || !strings.Contains(checks[0].Detail, "not a replica of host") {
		t.Fatalf("checks = %+v", checks)
	}
}

func TestCountStoreEmpty(t *testing.T) {
	counts, err := countStore(context.Background(), testutil.OpenFileStore(t, t.TempDir()))
	if err != nil || counts != (storeCounts{}) {
		t.Fatalf("countStore(empty) = %+v, %v", counts, err)
	}
}
