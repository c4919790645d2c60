//go:build cgo

package ext

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// snapSource writes a replicated database of 80 rows of 20,000 random bytes
// (about 25 chunks) through the sqlite3 shell and switches e to a reader
// configuration; it returns the replica URI and a query that reads every
// row's bytes with its expected answer.
func snapSource(t *testing.T, e *env, name string) (uri, query, want string) {
	t.Helper()
	sh := sqlite3Shell(t)
	db := filepath.Join(e.dir, name)
	w := "CREATE TABLE t(v BLOB);\n" +
		"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 80) INSERT INTO t SELECT randomblob(20000) FROM s;\n"
	if r := e.runHost(shellScript("file:"+db+"?vfs=verneuil", w, "PRAGMA verneuil_flush;"), sh, "-bail"); r.exitCode() != 0 {
		t.Fatalf("writer failed:\n%s", r)
	}
	query = "SELECT count(*), sum(length(hex(v))) FROM t"
	r := e.runHost(query+";", sh, "-separator", ", ", db)
	if r.exitCode() != 0 {
		t.Fatalf("query of the source failed:\n%s", r)
	}
	readerConfig(t, e)
	return "file:verneuil://" + testHost + db + "?vfs=verneuil_snapshot", query, "(" + strings.TrimSpace(r.stdout) + ")"
}

// TestPythonSnapshotFork: a process with a snapshot connection open forks
// without exec. The parent keeps working; a child that does not touch
// SQLite exits cleanly; a child that reads through the inherited or a new
// snapshot connection reads what is in memory and gets an error for the
// rest (which needs Go, gone in the child), explained on stderr; closing
// the inherited connection and exiting normally works. Nothing hangs (a
// hung child is killed by its alarm) or crashes.
func TestPythonSnapshotFork(t *testing.T) {
	py := python(t)
	e := newEnv(t, nil)
	uri, query, want := snapSource(t, e, "fork.db")
	script, err := filepath.Abs(filepath.Join("testdata", "snapfork.py"))
	if err != nil {
		t.Fatal(err)
	}
	r := e.runHost("", py, script, soPath, uri, query, "idle,cached,inherited,new,close")
	if r.exitCode() != 0 {
		t.Fatalf("%s failed:\n%s", py, r)
	}
	got := lines(r.stdout)
	// SQLite's own messages (a VFS cannot set them for reads and opens);
	// the VFS explains once per child on stderr (and in sqlite3_log).
	const forked = "verneuil_snapshot: not available in a child process forked without exec"
	wantLines := []string{
		"idle ok", "idle child exit 0",
		"cached result (20000,)", "cached child exit 0",
		"inherited error: disk I/O error", "inherited child exit 0",
		"new error: unable to open database file", "new child exit 0",
		"close ok", "close child exit 0",
		"parent refresh True", "parent result " + want,
	}
	if !slices.Equal(got, wantLines) {
		t.Fatalf("stdout = %q, want %q\n%s", got, wantLines, r)
	}
	if n := strings.Count(r.stderr, forked); n != 2 {
		t.Fatalf("%d explanations on stderr, want one per child that used SQLite (2)\n%s", n, r)
	}
}
