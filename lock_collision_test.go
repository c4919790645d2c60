package verneuil_test

import (
	"path/filepath"
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
