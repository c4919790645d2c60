package verneuil_test

import (
	"path/filepath"
	"testing"

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
