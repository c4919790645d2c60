package verneuil_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// TestWALCaptureUsesVFSDescriptor: commits through the VFS read the -wal
// through the descriptor SQLite holds (no open by name per commit), with
// one connection, with several connections of the process (the one that
// commits is not necessarily the one whose descriptor is lent), and after
// the connection whose -wal was lent closes; the replica stays the
// checkpointed reference, also after a commit by a bypassing (unix)
// connection and a checkpoint.
func TestWALCaptureUsesVFSDescriptor(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "fd.db")
	a := e.open(path, "_journal_mode=WAL")
	a.SetMaxOpenConns(1)
	mustExec(t, a, "PRAGMA wal_autocheckpoint=0")
	w := newWorkload(t, a, 7)
	opens, fileReads := tracker.WALOpensByName(), tracker.WALFramesFromFile()
	for range 20 {
		w.step()
	}
	if n := tracker.WALOpensByName() - opens; n != 0 {
		t.Errorf("one connection: %d captures opened the -wal by name, want 0", n)
	}
	if n := tracker.WALFramesFromFile() - fileReads; n != 0 {
		t.Errorf("one connection: %d frames were read from the -wal file, want 0 (the frames the connection wrote)", n)
	}
	e.checkWALReplica(t, path)

	// A second connection commits while the first keeps its -wal open,
	// then the first closes: the second's own descriptor is lent.
	b := e.open(path, "")
	b.SetMaxOpenConns(1)
	k := 0
	bstep := func() {
		k++
		mustExec(t, b, "INSERT INTO t0(k, v) VALUES(?, randomblob(?))", -100-k, 100+(k*3119)%9000)
	}
	opens, fileReads = tracker.WALOpensByName(), tracker.WALFramesFromFile()
	for i := range 20 {
		if i%2 == 0 {
			w.step()
		} else {
			bstep()
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		bstep()
	}
	if n := tracker.WALOpensByName() - opens; n != 0 {
		t.Errorf("two connections: %d captures opened the -wal by name, want 0", n)
	}
	if n := tracker.WALFramesFromFile() - fileReads; n != 0 {
		t.Errorf("two connections: %d frames were read from the -wal file, want 0", n)
	}
	e.checkWALReplica(t, path)

	plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	mustExec(t, plain, "INSERT INTO t0(k, v) VALUES(-1, randomblob(9000))")
	fileReads = tracker.WALFramesFromFile()
	for range 5 {
		bstep()
	}
	if tracker.WALFramesFromFile() == fileReads {
		t.Error("after a bypassing commit, no frame was read from the -wal file: its frames are not in the connection's record")
	}
	e.checkWALReplica(t, path)
	mustExec(t, plain, "PRAGMA wal_checkpoint(RESTART)")
	for range 5 {
		bstep()
	}
	e.checkWALReplica(t, path)
}

// TestWALCaptureConnectionsChurn: goroutines commit through connections
// of one process to one WAL database while others open a connection,
// read through it (which opens its -wal) and close it: the -wal a capture
// reads through may belong to a connection that is closing. Every commit
// is in the replica, byte for byte the checkpointed reference.
func TestWALCaptureConnectionsChurn(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "churn.db")
	db := e.open(path, "_journal_mode=WAL&_busy_timeout=10000")
	db.SetMaxOpenConns(3)
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, w INTEGER, v BLOB)")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				if _, err := db.ExecContext(ctx, "INSERT INTO t(w, v) VALUES(?, randomblob(?))", g, 100+(i*977)%5000); err != nil {
					errs <- fmt.Errorf("writer %d: %w", g, err)
					return
				}
			}
		}()
	}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 30 {
				c, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&_busy_timeout=10000")
				if err != nil {
					errs <- err
					return
				}
				var n int
				err = c.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n)
				c.Close()
				if err != nil {
					errs <- fmt.Errorf("churn %d: %w", g, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 180 {
		t.Fatalf("rows: %d %v, want 180", n, err)
	}
	e.checkWALReplica(t, path)
}

// TestWALCaptureAppendGrowth: commits that append rows grow the last
// chunk page by page (its pending copy is extended, not read again:
// walgrow.go), across chunk boundaries, then a VACUUM shrinks the file and
// appends grow it again; the replica is the checkpointed reference at
// every check.
func TestWALCaptureAppendGrowth(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "grow.db")
	db := e.open(path, "_journal_mode=WAL")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	for round := range 3 {
		for i := range 150 {
			mustExec(t, db, "INSERT INTO t(v) VALUES(randomblob(?))", 100+(i*1637+round*71)%3900)
			if i%50 == 49 {
				e.checkWALReplica(t, path)
			}
		}
		switch round {
		case 0:
			mustExec(t, db, "DELETE FROM t WHERE id % 3 = 0")
			mustExec(t, db, "VACUUM")
		case 1:
			mustExec(t, db, "PRAGMA wal_checkpoint(TRUNCATE)")
		}
		e.checkWALReplica(t, path)
	}
}

// TestWALCaptureRecordedWritesEdgeCases: transactions whose -wal writes
// the shim's record cannot hold, or holds in an unusual order: one longer
// than the record (its frames are read from the file), frames spilled by
// a small page cache and then rolled back (the next hold writes over
// them), a page changed again after its frame was spilled (SQLite rewrites
// frames in place and their checksums at the commit). The replica is the
// checkpointed reference after each.
func TestWALCaptureRecordedWritesEdgeCases(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "edge.db")
	db := e.open(path, "_journal_mode=WAL")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
	mustExec(t, db, "INSERT INTO t(k, v) VALUES(0, randomblob(100))")
	e.checkWALReplica(t, path)

	fileFrames := tracker.WALFramesFromFile()
	mustExec(t, db, "INSERT INTO t(k, v) VALUES(1, randomblob(3000000))") // > 1 MiB of frames
	if tracker.WALFramesFromFile() == fileFrames {
		t.Error("a 3 MB transaction's frames were all taken from the record, which holds 1 MiB")
	}
	e.checkWALReplica(t, path)

	mustExec(t, db, "PRAGMA cache_size=5")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		mustExec(t, tx, "INSERT INTO t(k, v) VALUES(?, randomblob(2000))", 10+i)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO t(k, v) VALUES(2, randomblob(500))")
	e.checkWALReplica(t, path)

	tx, err = db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 4 {
		for i := range 60 {
			mustExec(t, tx, "INSERT INTO t(k, v) VALUES(?, randomblob(700))", 1000*round+i)
		}
		mustExec(t, tx, "UPDATE t SET k = k + 1 WHERE k < 500") // pages spilled before
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	e.checkWALReplica(t, path)
	for i := range 20 {
		mustExec(t, db, "UPDATE t SET v = randomblob(300) WHERE id = ?", 1+i%5)
	}
	e.checkWALReplica(t, path)
}
