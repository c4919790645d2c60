package verneuil_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

// TestRegression_SliceHoldNeverFailsAWrite: a sliced rescan holds SHARED
// on a private file of the database while it reads a slice. An
// application in the same process with no busy handler (busy_timeout=0,
// as SQLite's TCL suite) that commits meanwhile must not get SQLITE_BUSY
// ("database is locked": corruptB-3.1.1 failed 1 run in 10-30): the
// application's lock wins, and the rescan retries. The failpoint keeps
// each slice's SHARED for a while, so the commit lands inside a hold
// every time; the replica after the flush is the file.
func TestRegression_SliceHoldNeverFailsAWrite(t *testing.T) {
	cases := []struct {
		name  string
		start string // the statement whose capture starts the sliced rescan
	}{
		{"read transaction starts the rescan", "SELECT count(*) FROM t"},
		{"commit starts the rescan", "INSERT INTO t VALUES('first')"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "hold.db")
			writeBig(t, path, 4).Close() // written behind verneuil's back
			defer failpoint.SetSleep("rescan-slice-held", 400*time.Millisecond)()
			v := e.open(path, "_journal_mode=DELETE&_busy_timeout=0")
			v.SetMaxOpenConns(1)
			before := sqlite3vfs.ReadStats().SliceHolds
			mustExec(t, v, c.start)
			waitSliceHold(t, before)
			for i := range 3 {
				if _, err := v.Exec("INSERT INTO t VALUES(?)", i); err != nil {
					t.Fatalf("commit %d while a sliced rescan holds SHARED: %v", i, err)
				}
			}
			e.checkReplica(path)
		})
	}
}

// waitSliceHold waits until a sliced rescan took SHARED once more than
// before (the failpoint then keeps it).
func waitSliceHold(t *testing.T, before int64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); sqlite3vfs.ReadStats().SliceHolds == before; {
		if time.Now().After(deadline) {
			t.Fatal("no sliced rescan took SHARED")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSliceHold_ApplicationReaderStillBusies: the wait for a slice of ours
// is only for ours. A second connection of the application that holds a
// read transaction makes a writer with no busy handler fail with
// SQLITE_BUSY as under the unix VFS (after the slice let go, not never),
// and once the reader ends the writer commits and the replica is the
// file.
func TestSliceHold_ApplicationReaderStillBusies(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "reader.db")
	writeBig(t, path, 4).Close()
	defer failpoint.SetSleep("rescan-slice-held", 300*time.Millisecond)()
	w := e.open(path, "_journal_mode=DELETE&_busy_timeout=0")
	w.SetMaxOpenConns(1)
	r := e.open(path, "_journal_mode=DELETE&_busy_timeout=0")
	r.SetMaxOpenConns(1)
	before := sqlite3vfs.ReadStats().SliceHolds
	tx, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil { // starts the rescan, keeps SHARED
		t.Fatal(err)
	}
	waitSliceHold(t, before)
	_, err = w.Exec("INSERT INTO t VALUES('blocked')")
	if err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("commit while the application's own reader holds SHARED: got %v, want database is locked", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, w, "INSERT INTO t VALUES('after')")
	e.checkReplica(path)
}
