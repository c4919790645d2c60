package verneuil_test

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// TestWALReplication_TwoConnectionsInterleaved: two connections of one
// process write one WAL database in turn, and each checkpoints with every
// kind of checkpoint (one connection's RESTART or TRUNCATE is then the
// restart the other's next commit finds); a third keeps a read
// transaction open for a while (checkpoints cannot restart past it).
// Every few commits the replica is the checkpointed reference.
func TestWALReplication_TwoConnectionsInterleaved(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "two.db")
	a := e.open(path, "_journal_mode=WAL")
	a.SetMaxOpenConns(1)
	b := e.open(path, "_journal_mode=WAL")
	b.SetMaxOpenConns(1)
	w := newWorkload(t, a, 21) // one schema, written through both connections
	reader := e.open(path, "")
	reader.SetMaxOpenConns(1)
	var rtx *sql.Tx
	kinds := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
	for i := range 60 {
		other := b
		if w.db = a; i%2 == 1 {
			w.db, other = b, a
		}
		w.step()
		if w.rng.IntN(3) == 0 {
			if _, err := other.Exec("PRAGMA wal_checkpoint(" + kinds[w.rng.IntN(len(kinds))] + ")"); err != nil {
				t.Fatalf("checkpoint: %v", err)
			}
		}
		switch {
		case i%20 == 5:
			var err error
			if rtx, err = reader.Begin(); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := rtx.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
				t.Fatal(err)
			}
		case i%20 == 12 && rtx != nil:
			rtx.Rollback()
			rtx = nil
		}
		if i%6 == 5 && rtx == nil {
			e.checkWALReplica(t, path)
		}
	}
	if rtx != nil {
		rtx.Rollback()
	}
	e.checkWALReplica(t, path)
}

// TestWALReplication_BypassingCheckpointerInProcess: a connection through
// unix (no capture) commits and checkpoints with RESTART and TRUNCATE
// between the VFS's commits; the next VFS commit catches up with the
// bypassing frames, or finds a generation it did not witness and rescans:
// after it the replica is the reference.
func TestWALReplication_BypassingCheckpointerInProcess(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "bypass.db")
	db := e.open(path, "_journal_mode=WAL")
	db.SetMaxOpenConns(1)
	w := newWorkload(t, db, 31)
	for range 5 {
		w.step()
	}
	plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetMaxOpenConns(1)
	for i := range 24 {
		switch i % 4 {
		case 0:
			mustExec(t, plain, "INSERT INTO t0(k, v) VALUES(-1, randomblob(3000))")
		case 1:
			mustExec(t, plain, "PRAGMA wal_checkpoint(RESTART)")
		case 2:
			mustExec(t, plain, "INSERT INTO t0(k, v) VALUES(-1, randomblob(70000))")
			mustExec(t, plain, "PRAGMA wal_checkpoint(TRUNCATE)")
		}
		w.step() // may roll back: a commit through the VFS follows
		mustExec(t, db, "INSERT INTO t0(k, v) VALUES(-3, x'00')")
		e.checkWALReplica(t, path)
	}
}

// TestWALReplication_ReadReplica: a replica captured in WAL mode opens
// through the read-replica VFS (which presents it in rollback mode) and
// answers what the source holds.
func TestWALReplication_ReadReplica(t *testing.T) {
	e := snapEnv(t)
	path := filepath.Join(e.dir, "walsnap.db")
	db := e.open(path, "_journal_mode=WAL")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "CREATE TABLE t(a, b)")
	for i := range 20 {
		mustExec(t, db, "INSERT INTO t VALUES(?, randomblob(3000))", i)
	}
	e.checkWALReplica(t, path)
	snap := openSnap(t, path, "")
	var n, sum int
	if err := snap.QueryRow("SELECT count(*), sum(a) FROM t").Scan(&n, &sum); err != nil || n != 20 || sum != 190 {
		t.Fatalf("read replica of a WAL-sourced replica: %d rows, sum %d, %v", n, sum, err)
	}
	var mode string
	if err := snap.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode == "wal" {
		t.Fatalf("read replica journal mode %q, %v", mode, err)
	}
}
