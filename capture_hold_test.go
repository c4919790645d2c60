package verneuil_test

import (
	"context"
	"path/filepath"
	"strings"
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

// TestCaptureHold_ConnectionKeepingSharedFailsOthersAsUnix: after a capture,
// the capture's hold lingers briefly so that a waiting EXCLUSIVE does not
// retry in the instant between the capture's end and its connection's
// unlock to NONE. When that connection really keeps SHARED (a read
// statement still active after COMMIT), another connection with no busy
// handler fails its commit with "database is locked", as under unix, after
// the linger (200 ms) and not after the full wait for our holds (10 s).
func TestCaptureHold_ConnectionKeepingSharedFailsOthersAsUnix(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "keeps.db")
	a := e.open(path, "_journal_mode=DELETE&_busy_timeout=10000")
	b := e.open(path, "_journal_mode=DELETE&_busy_timeout=0")
	b.SetMaxOpenConns(1)
	mustExec(t, a, "CREATE TABLE t(v)")
	mustExec(t, a, "INSERT INTO t VALUES('a0'), ('a1')")
	ctx := context.Background()
	conn, err := a.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(ctx, "SELECT v FROM t")
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatalf("no row: %v", rows.Err())
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO t VALUES('a2')"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	// a keeps SHARED for its active SELECT.
	start := time.Now()
	_, err = b.Exec("INSERT INTO t VALUES('b')")
	waited := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("b's commit while a keeps SHARED: err = %v, want database is locked", err)
	}
	if waited >= 10*time.Second {
		t.Fatalf("b waited %v for a SHARED that is the application's own", waited)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, b, "INSERT INTO t VALUES('b')")
	e.checkReplica(path)
}
