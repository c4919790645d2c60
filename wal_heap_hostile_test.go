package verneuil_test

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"strings"

	"github.com/verneuil-go/verneuil/internal/restore"
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
	path, db := e.openHeapWAL(t, "salts.db")
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
	path, db := e.openHeapWAL(t, "live.db")
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

// TestWALHeap_ReadReplicaWhileCommitting: a read replica of a database
// written with a heap-memory wal-index is queried while the source
// commits (and checkpoints) and flushes: every answer is a committed state
// (rows 0..n-1, whole), and a read replica refreshed after the last flush
// answers the last one.
func TestWALHeap_ReadReplicaWhileCommitting(t *testing.T) {
	e := snapEnv(t)
	path, db := e.openHeapWAL(t, "heapsnap.db")
	mustExec(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
	mustExec(t, db, "INSERT INTO t VALUES(0, randomblob(3000))")
	if err := e.r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	snap := openSnap(t, path, "")
	const rows = 80
	done := make(chan error, 1)
	go func() {
		for i := 1; i < rows; i++ {
			if _, err := db.Exec("INSERT INTO t VALUES(?, randomblob(3000))", i); err != nil {
				done <- err
				return
			}
			if i%20 == 0 {
				if _, err := db.Exec("PRAGMA wal_checkpoint(RESTART)"); err != nil {
					done <- err
					return
				}
			}
			if i%5 == 0 {
				if err := e.r.Flush(t.Context()); err != nil {
					done <- err
					return
				}
			}
		}
		done <- e.r.Flush(t.Context())
	}()
	check := func(snap *sql.DB) int {
		var n, sum, blobs int
		if err := snap.QueryRow("SELECT count(*), sum(a), sum(length(b)) FROM t").Scan(&n, &sum, &blobs); err != nil {
			t.Fatalf("read replica: %v", err)
		}
		if sum != n*(n-1)/2 || blobs != 3000*n {
			t.Fatalf("read replica answered %d rows, sum %d, %d blob bytes: not a committed state", n, sum, blobs)
		}
		return n
	}
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		check(snap)
	}
	last := openSnap(t, path, "")
	last.SetMaxOpenConns(1)
	queryString(t, last, "PRAGMA verneuil_snapshot_refresh") // the source is shared: check now
	if n := check(last); n != rows {
		t.Fatalf("a read replica refreshed after the last flush has %d rows, want %d", n, rows)
	}
	e.checkWALReplica(t, path)
}

// TestWALHeap_LastFrameCutUnderTheConnection: an operator truncates the
// -wal in the middle of its last frame (the page data, not the frame
// header) while a connection with a heap-memory wal-index has it open;
// SQLite appends the next commit's frames after it, leaving a hole of
// zeros in that frame, so the files now hold the state before that frame
// (what a checkpoint of them gives). The next capture must not lay pages
// from the hole over the remembered state (a corrupt replica): the
// replica is the last state captured or that reference. The same with a
// wal-index in -shm.
func TestWALHeap_LastFrameCutUnderTheConnection(t *testing.T) {
	t.Run("heap", func(t *testing.T) {
		e := newEnv(t)
		path, db := e.openHeapWAL(t, "cut.db")
		lastFrameCut(t, e, path, db)
	})
	t.Run("shm", func(t *testing.T) {
		e := newEnv(t)
		path := filepath.Join(e.dir, "cut.db")
		db := e.open(path, "_journal_mode=WAL")
		db.SetMaxOpenConns(1)
		lastFrameCut(t, e, path, db)
	})
}

func lastFrameCut(t *testing.T, e *env, path string, db *sql.DB) {
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	for i := range 50 {
		mustExec(t, db, "INSERT INTO t VALUES(?, randomblob(900))", i)
	}
	mustExec(t, db, "UPDATE t SET v=randomblob(900) WHERE id=20")
	restored := func() string {
		out := filepath.Join(t.TempDir(), "restored.db")
		if err := restore.ToFile(t.Context(), e.r.Targets()[0], e.latest(path), out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if err := e.r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := testutil.FileSHA256(t, restored())
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path+"-wal", fi.Size()-2000); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "UPDATE t SET v=randomblob(900) WHERE id=45") // another leaf page of the same chunk
	flushErr := e.r.Flush(t.Context())
	got := testutil.FileSHA256(t, restored())
	if ref := testutil.FileSHA256(t, walReference(t, path)); got != before && got != ref {
		t.Fatalf("after the cut (flush: %v), the replica is neither the last state captured nor the checkpointed files", flushErr)
	}
}
