package verneuil_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

func TestReplication_Smoke(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "smoke.db")
	db := e.open(path, "_journal_mode=DELETE")
	mustExec(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)")
	for i := range 50 {
		mustExec(t, db, "INSERT INTO t(b) VALUES(?)", i)
	}
	e.checkReplica(path)
	mustExec(t, db, "DELETE FROM t WHERE a % 2 = 0")
	e.checkReplica(path)
}

func TestReplication_CapturesThroughShim(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "shim.db")
	before := sqlite3vfs.ReadStats()
	db := e.open(path, "_journal_mode=TRUNCATE")
	mustExec(t, db, "CREATE TABLE t(a)")
	mustExec(t, db, "INSERT INTO t VALUES(1)")
	var vfs string
	if err := db.QueryRow("PRAGMA verneuil_manifest_name").Scan(&vfs); err != nil {
		t.Fatalf("pragma verneuil_manifest_name: %v", err)
	}
	if vfs != e.key(path) {
		t.Fatalf("manifest name %q, want %q", vfs, e.key(path))
	}
	if got := sqlite3vfs.ReadStats().Commits - before.Commits; got != 2 {
		t.Fatalf("shim saw %d commits, want 2", got)
	}
	e.checkReplica(path)
	if n := e.latest(path).Length; n == 0 {
		t.Fatalf("replica is empty")
	}
}

// TestReplication_DoNoHarm: an unusable spool or an unreachable target
// never fails a write; replication catches up once the target is back.
func TestReplication_DoNoHarm(t *testing.T) {
	e := newEnv(t)
	// The target disappears: commits still succeed, flush reports it.
	path := filepath.Join(e.dir, "harm.db")
	db := e.open(path, "_journal_mode=DELETE")
	mustExec(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
	moved := e.store + ".away"
	if err := os.Rename(e.store, moved); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		mustExec(t, db, "INSERT INTO t(b) VALUES(randomblob(3000))")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.r.Flush(ctx); err == nil {
		t.Fatal("flush succeeded with the target gone")
	}
	var res string
	if err := db.QueryRow("PRAGMA verneuil_flush").Scan(&res); err == nil {
		t.Fatalf("PRAGMA verneuil_flush returned %q with the target gone", res)
	}
	if err := os.Rename(moved, e.store); err != nil {
		t.Fatal(err)
	}
	e.checkReplica(path)

	// The spool cannot hold this database: writes pass through unreplicated.
	dbs := filepath.Join(e.cfg.SpoolDir, "dbs")
	if err := os.RemoveAll(dbs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dbs, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := e.open(filepath.Join(e.dir, "unspooled.db"), "_journal_mode=DELETE")
	mustExec(t, other, "CREATE TABLE t(a)")
	mustExec(t, other, "INSERT INTO t VALUES(1)")
	other.Close()
	os.Remove(dbs)
}

// TestReplication_MakeDefault: with make_default, databases opened without
// a vfs= parameter are replicated.
func TestReplication_MakeDefault(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.MakeDefault = true })
	t.Cleanup(func() {
		if err := sqlite3vfs.MakeDefault("unix"); err != nil {
			t.Error(err)
		}
	})
	path := filepath.Join(e.dir, "default.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=PERSIST")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec(t, db, "CREATE TABLE t(a)")
	mustExec(t, db, "INSERT INTO t VALUES(randomblob(100000))")
	var vfs string
	if err := db.QueryRow("PRAGMA verneuil_manifest_name").Scan(&vfs); err != nil {
		t.Fatalf("database did not open through verneuil: %v", err)
	}
	e.checkReplica(path)
}
