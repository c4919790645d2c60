package verneuil_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mattn/go-sqlite3"
)

// sqliteFcntlPersistWAL is SQLITE_FCNTL_PERSIST_WAL.
const sqliteFcntlPersistWAL = 10

// TestRegression_WALReadOnlyShm: walro.test and walpersist.test ended with
// a segmentation fault in the verneuil testfixture. The crash is the
// testfixture's own: after the refusal of journal_mode=WAL the test's
// `file attributes test.db-shm` fails, its connection "db" is never
// opened, and `sqlite3_extended_errcode db` then turns the text "db" into
// the pointer 0xdb. What those files were meant to exercise never ran
// through the VFS: a database already in WAL mode (made by another
// process), read through readonly_shm=1 (the -shm opened read-only, even
// with a corrupt header), written and checkpointed by another connection,
// and SQLITE_FCNTL_PERSIST_WAL. This runs those steps through the verneuil
// VFS and the unix VFS and requires the same answers, and no crash.
func TestRegression_WALReadOnlyShm(t *testing.T) {
	e := newEnv(t)
	got := map[string][]string{}
	for _, vfs := range []string{"unix", "verneuil"} {
		got[vfs] = walroScenario(t, filepath.Join(e.dir, vfs), vfs)
	}
	u, v := got["unix"], got["verneuil"]
	if len(u) != len(v) {
		t.Fatalf("unix gave %d answers, verneuil %d:\nunix %q\nverneuil %q", len(u), len(v), u, v)
	}
	for i := range u {
		if u[i] != v[i] {
			t.Errorf("step %d: verneuil %q, unix %q", i, v[i], u[i])
		}
	}
}

// walroScenario runs the steps of walro.test and walpersist.test that
// involve the VFS under test: the writer is a plain unix connection (as
// another process would be), the readers and the persistent-WAL
// connection use vfs.
func walroScenario(t *testing.T, dir, vfs string) []string {
	t.Helper()
	ctx := context.Background()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "test.db")
	var out []string
	note := func(s string) { out = append(out, s) }
	open := func(params string) (*sql.DB, *sql.Conn) {
		db, err := sql.Open("sqlite3", "file:"+path+"?"+params)
		if err != nil {
			t.Fatal(err)
		}
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("%s %s after %q: %v", vfs, params, out, err)
		}
		return db, c
	}
	run := func(c *sql.Conn, q string) { note(q + " -> " + answer(ctx, c, q)) }

	// Another process made a WAL database and left its -wal and -shm
	// (persistent WAL): no connection of this process has the -shm open, so
	// readonly_shm=1 really opens it read-only.
	wdb, w := open("vfs=unix")
	for _, q := range []string{"PRAGMA auto_vacuum=0", "PRAGMA journal_mode=WAL",
		"PRAGMA wal_autocheckpoint=0", "CREATE TABLE t1(x, y)", "INSERT INTO t1 VALUES('a', 'b')",
		"INSERT INTO t1 VALUES('c', 'd')"} {
		run(w, q)
	}
	persist := func(c *sql.Conn, arg int) {
		err := c.Raw(func(dc any) error {
			return dc.(*sqlite3.SQLiteConn).SetFileControlInt("main", sqliteFcntlPersistWAL, arg)
		})
		note(fmt.Sprintf("persist_wal %d -> %v", arg, err))
	}
	exists := func() {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			_, err := os.Stat(path + suffix)
			note(fmt.Sprintf("exists %s: %v", strings.TrimPrefix(suffix, "-"), err == nil))
		}
	}
	persist(w, 1)
	w.Close()
	wdb.Close()
	exists()

	rdb, r := open("vfs=" + vfs + "&readonly_shm=1")
	run(r, "SELECT * FROM t1")
	run(r, "INSERT INTO t1 VALUES('e', 'f')") // read-only shm: SQLITE_READONLY
	run(r, "PRAGMA wal_checkpoint")
	run(r, "PRAGMA journal_mode=DELETE")
	run(r, "PRAGMA journal_mode=WAL")
	run(r, "SELECT * FROM t1")
	r.Close()
	rdb.Close()
	exists()

	// A corrupt -shm header, read through readonly_shm=1 (walro 1.2.3).
	f, err := os.OpenFile(path+"-shm", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{1, 2, 3, 4}, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rdb, r = open("vfs=" + vfs + "&readonly_shm=1")
	run(r, "SELECT * FROM t1")
	r.Close()
	rdb.Close()

	// SQLITE_FCNTL_PERSIST_WAL through the VFS (walpersist 1.5-1.11), and a
	// writer through the VFS with a checkpoint (walro 1.1.11).
	pdb, p := open("vfs=" + vfs)
	run(p, "SELECT count(*) FROM t1")
	for _, arg := range []int{-1, 1, -1, 0, -1, 1} {
		persist(p, arg)
	}
	run(p, "INSERT INTO t1 VALUES('g', 'h')")
	run(p, "PRAGMA wal_checkpoint")
	p.Close()
	pdb.Close()
	exists()
	pdb, p = open("vfs=" + vfs)
	run(p, "PRAGMA integrity_check")
	run(p, "SELECT * FROM t1")
	persist(p, 0)
	p.Close()
	pdb.Close()
	exists()
	return out
}
