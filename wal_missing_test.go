package verneuil_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// TestWALMissing_DeletedUnderOpenConnection: the -wal deleted while a
// connection through verneuil keeps it open (SQLite goes on committing to
// the file it opened): those commits are reported by flush
// (tracker.ErrWALMissing), never published wrong; once the connection was
// closed and the database reopened, the next commit is captured and the
// replica is the checkpointed state.
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
	err := e.r.Flush(context.Background())
	if !errors.Is(err, tracker.ErrWALMissing) || !strings.Contains(err.Error(), "-wal") {
		t.Fatalf("flush after commits to a deleted -wal: %v, want ErrWALMissing", err)
	}
	if after := e.latest(path); after.Seq != before.Seq {
		t.Fatalf("a version (%d) was published from a -wal that was not read", after.Seq)
	}
	db.Close() // checkpoints the orphaned -wal into the file
	db = e.open(path, "")
	mustExec(t, db, "INSERT INTO t VALUES(randomblob(3000))")
	e.checkWALReplica(t, path)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 5 {
		t.Fatalf("rows: %d, %v", n, err)
	}
	db.Close()
}
