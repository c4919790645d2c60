package verneuil_test

import (
	"bytes"
	"encoding/binary"
	"strings"

	"github.com/verneuil-go/verneuil/internal/testutil"
	"os"
	"path/filepath"
	"testing"
)

// rewriteWALSalts gives the -wal at path a valid header with other salts:
// its frames no longer belong to it.
func rewriteWALSalts(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := make([]byte, 32)
	if _, err := f.ReadAt(h, 0); err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	be.PutUint32(h[16:], be.Uint32(h[16:])+7)
	be.PutUint32(h[20:], be.Uint32(h[20:])^0x5a5a5a5a)
	var order binary.ByteOrder = binary.LittleEndian
	if be.Uint32(h)&1 == 1 {
		order = binary.BigEndian
	}
	var s1, s2 uint32
	for i := 0; i < 24; i += 8 {
		s1 += order.Uint32(h[i:]) + s2
		s2 += order.Uint32(h[i+4:]) + s1
	}
	be.PutUint32(h[24:], s1)
	be.PutUint32(h[28:], s2)
	if _, err := f.WriteAt(h, 0); err != nil {
		t.Fatal(err)
	}
}

// TestWALHeap_SaltsRewrittenUnderTheConnection: an operator rewrites the
// -wal header (valid, other salts) while a connection with a heap-memory
// wal-index writes to it. SQLite keeps appending frames of its own
// generation, which the file no longer validates. Those commits must not
// be taken for commits that wrote nothing: once the connection restarts
// the WAL, the replica is the checkpointed reference, and a flush never
// reports success for a state that is not it.
func TestWALHeap_SaltsRewrittenUnderTheConnection(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "salts.db")
	db := e.open(path, "_locking_mode=EXCLUSIVE")
	db.SetMaxOpenConns(1)
	journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	for i := range 200 {
		mustExec(t, db, "INSERT INTO t VALUES(?, randomblob(900))", i)
	}
	e.checkWALReplica(t, path)
	rewriteWALSalts(t, path+"-wal")
	mustExec(t, db, "UPDATE t SET v=zeroblob(900) WHERE id=150")
	if err := e.r.Flush(t.Context()); err == nil {
		t.Fatal("flush succeeded: the commit after the rewrite was taken for one that wrote nothing")
	}
	mustExec(t, db, "PRAGMA wal_checkpoint(RESTART)")
	mustExec(t, db, "INSERT INTO t VALUES(1000, randomblob(900))")
	if err := e.r.Flush(t.Context()); err != nil {
		t.Logf("flush after the restart: %v", err)
		// A failed capture: a later commit must bring the replica back.
		mustExec(t, db, "INSERT INTO t VALUES(1001, randomblob(900))")
	}
	e.checkWALReplica(t, path)
}

// TestWALHeap_RestoreOverLiveSession: an operator restores the replica
// (with --force: replace, move journals aside) over the database while a
// connection with a heap-memory wal-index has it open with committed
// frames in its -wal. The restore must refuse (the database is in use)
// and leave the -wal where it is: the frames are the only copy of those
// commits until the next checkpoint.
func TestWALHeap_RestoreOverLiveSession(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "live.db")
	db := e.open(path, "_locking_mode=EXCLUSIVE")
	db.SetMaxOpenConns(1)
	journalMode(t, db, "PRAGMA journal_mode=WAL", "wal")
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	mustExec(t, db, "INSERT INTO t VALUES(1, randomblob(5000))")
	// Flushed, not compared: reading the file here and closing it would
	// drop this process's POSIX locks, the connection's EXCLUSIVE.
	if err := e.r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	walBefore, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	heapMode(t, path, true)
	// Another process (POSIX locks do not conflict within one).
	_, errOut, code := testutil.Ctl(t, testutil.ConfigJSON(t, e.cfg), "restore", path, "--out", path, "--force")
	if code == 0 || !strings.Contains(errOut, "in use") {
		t.Fatalf("restore --force over a live heap-memory WAL session: exit %d %q, want a refusal (in use)", code, errOut)
	}
	walAfter, err := os.ReadFile(path + "-wal")
	if err != nil || !bytes.Equal(walBefore, walAfter) {
		t.Fatalf("the -wal was not left in place: %v", err)
	}
	mustExec(t, db, "INSERT INTO t VALUES(2, randomblob(5000))")
	e.checkWALReplica(t, path)
}
