package verneuil_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

// TestCaptureHold_NeverFailsAnotherConnectionsCommit: a capture runs under
// its connection's SHARED, kept after the commit that unix would have
// released at once. Another connection of the process with no busy
// handler, which took RESERVED after that commit, must not fail its own
// commit because the capture still holds SHARED: it waits for the capture
// (the failpoint makes the capture last 400 ms, so the commit lands inside
// it every time).
func TestCaptureHold_NeverFailsAnotherConnectionsCommit(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "capture.db")
	a := e.open(path, "_journal_mode=DELETE&_busy_timeout=10000")
	a.SetMaxOpenConns(1)
	b := e.open(path, "_journal_mode=DELETE&_busy_timeout=0")
	b.SetMaxOpenConns(1)
	mustExec(t, a, "CREATE TABLE t(v)")
	mustExec(t, b, "INSERT INTO t VALUES('b0')")
	defer failpoint.SetSleep("capture-before-copy", 400*time.Millisecond)()
	before := sqlite3vfs.ReadStats().Commits
	done := make(chan error, 1)
	go func() {
		_, err := a.Exec("INSERT INTO t VALUES('a')")
		done <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); sqlite3vfs.ReadStats().Commits == before; {
		if time.Now().After(deadline) {
			t.Fatal("no capture began")
		}
		time.Sleep(time.Millisecond)
	}
	// a's capture holds SHARED only: b takes RESERVED and commits.
	tx, err := b.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES('b1')"); err != nil {
		t.Fatalf("b's write while a's capture holds SHARED: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("b's commit while a's capture holds SHARED: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.checkReplica(path)
}
