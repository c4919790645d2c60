package verneuil_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestWALMissing_DeletedUnderOpenConnection: the -wal deleted while a
// connection through verneuil keeps it open (SQLite goes on committing to
// the file it opened). The capture reads the frames through the
// descriptor SQLite writes (shimwalfile.c), not by path, so those commits
// are still captured and flushed; once the connection closes (its
// checkpoint moves the orphaned -wal into the file) the replica is the
// file, and the next commit through a new connection is captured too.
func TestWALMissing_DeletedUnderOpenConnection(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "gone-wal.db")
	db := e.open(path, "_journal_mode=WAL")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "CREATE TABLE t(a)")
	mustExec(t, db, "INSERT INTO t VALUES(randomblob(3000))")
	e.checkWALReplica(t, path)
	before := e.latest(path)
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		mustExec(t, db, "INSERT INTO t VALUES(randomblob(3000))")
	}
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatalf("flush after commits to a deleted -wal: %v", err)
	}
	after := e.latest(path)
	if after.Seq <= before.Seq {
		t.Fatalf("no version published after commits to a deleted -wal (latest %d, before %d)", after.Seq, before.Seq)
	}
	db.Close() // checkpoints the orphaned -wal into the file
	e.checkWALReplica(t, path)
	db = e.open(path, "")
	mustExec(t, db, "INSERT INTO t VALUES(randomblob(3000))")
	e.checkWALReplica(t, path)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 5 {
		t.Fatalf("rows: %d, %v", n, err)
	}
	db.Close()
}
