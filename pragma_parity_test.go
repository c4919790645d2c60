package verneuil_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mattn/go-sqlite3"
)

// parityCase is one connection setup: the database is created by setup
// through the unix VFS (one copy per VFS), opened with params (or opened
// as dsn when it is a temp or memory database), and the statements run on
// one connection, in order. Every statement must give the unix VFS's
// answer (rows, or error code and extended code).
type parityCase struct {
	name   string
	setup  []string // on the file, through unix, before the test connection
	dsn    string   // "" for the file; else a temp ("file:") or memory DSN
	params string
	stmts  []string // %AUX% is replaced by the path of a second database file
}

func parityCases() []parityCase {
	rollback := []string{"PRAGMA journal_mode=DELETE", "CREATE TABLE t(a)", "INSERT INTO t VALUES(1)"}
	wal := []string{"PRAGMA journal_mode=WAL", "CREATE TABLE t(a)", "INSERT INTO t VALUES(1)"}
	switches := []string{"PRAGMA journal_mode=TRUNCATE", "PRAGMA journal_mode=PERSIST",
		"PRAGMA journal_mode=MEMORY", "PRAGMA journal_mode=OFF", "PRAGMA journal_mode=DELETE",
		"PRAGMA journal_mode", "PRAGMA locking_mode"}
	return []parityCase{
		{name: "read-write (WAL replicated: switched)", setup: rollback,
			stmts: append([]string{"PRAGMA journal_mode=WAL", "PRAGMA journal_mode"}, switches...)},
		{name: "read-only", setup: rollback, params: "mode=ro",
			stmts: append([]string{"PRAGMA journal_mode=WAL", "PRAGMA journal_mode=wal", "PRAGMA main.journal_mode=WAL",
				"SELECT a FROM t", "INSERT INTO t VALUES(2)"}, switches...)},
		{name: "already WAL", setup: wal,
			stmts: []string{"PRAGMA journal_mode=WAL", "PRAGMA journal_mode", "SELECT a FROM t",
				"PRAGMA locking_mode", "PRAGMA journal_mode=WAL"}},
		{name: "already WAL, read-only", setup: wal, params: "mode=ro",
			stmts: []string{"PRAGMA journal_mode=WAL", "PRAGMA journal_mode", "SELECT a FROM t",
				"PRAGMA journal_mode=DELETE", "INSERT INTO t VALUES(2)"}},
		{name: "immutable", setup: rollback, params: "immutable=1",
			stmts: append([]string{"PRAGMA journal_mode=WAL", "SELECT a FROM t", "INSERT INTO t VALUES(2)"}, switches...)},
		{name: "nolock", setup: rollback, params: "nolock=1",
			stmts: append([]string{"PRAGMA journal_mode=WAL", "PRAGMA journal_mode", "INSERT INTO t VALUES(2)"}, switches...)},
		{name: "temp database", dsn: "file:",
			stmts: append([]string{"CREATE TABLE t(a)", "PRAGMA journal_mode=WAL", "PRAGMA journal_mode"}, switches...)},
		{name: "memory database", dsn: "file::memory:",
			stmts: append([]string{"CREATE TABLE t(a)", "PRAGMA journal_mode=WAL", "PRAGMA journal_mode"}, switches...)},
		{name: "in a read transaction", setup: rollback,
			stmts: []string{"BEGIN", "SELECT a FROM t", "PRAGMA journal_mode=WAL", "COMMIT", "PRAGMA journal_mode"}},
		{name: "in a transaction that wrote nothing", setup: rollback,
			stmts: []string{"BEGIN IMMEDIATE", "PRAGMA journal_mode=WAL", "ROLLBACK", "PRAGMA journal_mode"}},
		{name: "in a write transaction", setup: rollback,
			stmts: []string{"BEGIN IMMEDIATE", "INSERT INTO t VALUES(2)", "PRAGMA journal_mode=WAL", "ROLLBACK", "SELECT a FROM t"}},
		{name: "exclusive locking, read-only", setup: rollback, params: "mode=ro",
			stmts: []string{"PRAGMA locking_mode=EXCLUSIVE", "SELECT a FROM t", "PRAGMA journal_mode=WAL",
				"PRAGMA journal_mode", "PRAGMA locking_mode=NORMAL"}},
		// A wal-index in heap memory: replicated (wal_heap_test.go).
		{name: "exclusive locking", setup: rollback,
			stmts: []string{"PRAGMA locking_mode=EXCLUSIVE", "INSERT INTO t VALUES(2)", "PRAGMA journal_mode=WAL", "PRAGMA journal_mode",
				"INSERT INTO t VALUES(3)", "PRAGMA locking_mode=NORMAL", "PRAGMA locking_mode", "SELECT a FROM t",
				"PRAGMA journal_mode=DELETE", "PRAGMA journal_mode=WAL", "PRAGMA locking_mode"}},
		{name: "exclusive locking ended by NORMAL", setup: rollback,
			stmts: []string{"PRAGMA locking_mode=EXCLUSIVE", "INSERT INTO t VALUES(2)", "PRAGMA locking_mode=NORMAL",
				"PRAGMA journal_mode=WAL", "PRAGMA journal_mode"}},
		{name: "exclusive locking ended by NORMAL, then a read", setup: rollback,
			stmts: []string{"PRAGMA locking_mode=EXCLUSIVE", "INSERT INTO t VALUES(2)", "PRAGMA locking_mode=NORMAL",
				"SELECT a FROM t", "PRAGMA journal_mode=WAL", "PRAGMA journal_mode"}},
		{name: "journal off and memory, read-only", setup: rollback, params: "mode=ro",
			stmts: []string{"PRAGMA journal_mode=MEMORY", "PRAGMA journal_mode=WAL", "PRAGMA journal_mode=OFF",
				"PRAGMA journal_mode=WAL", "SELECT a FROM t"}},
		{name: "journal memory", setup: rollback,
			stmts: []string{"PRAGMA journal_mode=MEMORY", "PRAGMA journal_mode=WAL", "PRAGMA journal_mode"}},
		{name: "attached read-only", setup: rollback,
			stmts: []string{"ATTACH 'file:%AUX%?mode=ro' AS aux", "PRAGMA aux.journal_mode=WAL", "PRAGMA aux.journal_mode",
				"PRAGMA journal_mode", "DETACH aux"}},
		{name: "attached", setup: rollback,
			stmts: []string{"ATTACH 'file:%AUX%' AS aux", "PRAGMA aux.journal_mode=WAL", "PRAGMA aux.journal_mode=DELETE", "DETACH aux"}},
		// SQLite sends the pragma's file control to the main database only:
		// with an untracked main, an attached replicated database switches
		// (docs/ARCHITECTURE.md, Limitations).
		{name: "attached to a temp database, all schemas", setup: rollback, dsn: "file:",
			stmts: []string{"ATTACH 'file:%AUX%' AS aux", "PRAGMA journal_mode=WAL", "PRAGMA aux.journal_mode", "DETACH aux"}},
		// locking_mode=EXCLUSIVE without a schema name reaches only main's
		// file control: aux is switched without the refusal (its WAL
		// writes are then reported, not captured: Limitations).
		{name: "attached, exclusive for all schemas", setup: rollback,
			stmts: []string{"ATTACH 'file:%AUX%' AS aux", "SELECT count(*) FROM aux.t", "PRAGMA locking_mode=EXCLUSIVE",
				"SELECT count(*) FROM aux.t", "INSERT INTO aux.t VALUES(2)", "PRAGMA aux.journal_mode=WAL"}},
		{name: "attached already WAL", setup: wal,
			stmts: []string{"ATTACH 'file:%AUX%' AS aux", "PRAGMA aux.journal_mode=WAL", "PRAGMA aux.journal_mode", "DETACH aux"}},
	}
}

// TestPragmaParity_UnixAnswers: the pragmas and file controls the verneuil
// VFS intercepts answer what the unix VFS answers, apart from the WAL
// refusal where SQLite would really switch a replicated database to WAL.
func TestPragmaParity_UnixAnswers(t *testing.T) {
	e := newEnv(t)
	for i, c := range parityCases() {
		t.Run(c.name, func(t *testing.T) {
			got := map[string][]string{}
			for _, vfs := range []string{"unix", "verneuil"} {
				dir := filepath.Join(e.dir, fmt.Sprintf("case%d-%s", i, vfs))
				got[vfs] = runParity(t, dir, vfs, c)
			}
			for k := range c.stmts {
				u, v := got["unix"][k], got["verneuil"][k]
				if u != v {
					t.Errorf("%q: verneuil answered %q, unix %q", c.stmts[k], v, u)
				}
			}
		})
	}
}

// runParity creates the case's database(s) in dir through unix, then runs
// its statements on one connection through vfs, and returns one answer per
// statement.
func runParity(t *testing.T, dir, vfs string, c parityCase) []string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(dir, "p.db")
	aux := filepath.Join(dir, "aux.db")
	for _, p := range []string{path, aux} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if len(c.setup) == 0 {
			continue
		}
		s, err := sql.Open("sqlite3", "file:"+p+"?vfs=unix")
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range c.setup {
			mustExec(t, s, q)
		}
		s.Close()
	}
	dsn := c.dsn
	if dsn == "" {
		dsn = "file:" + path
	}
	dsn += "?vfs=" + vfs
	if c.params != "" {
		dsn += "&" + c.params
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	for _, q := range c.stmts {
		out = append(out, answer(ctx, conn, strings.ReplaceAll(q, "%AUX%", aux)))
	}
	return out
}

// answer runs q and describes its outcome: the rows, or the error's codes.
func answer(ctx context.Context, conn *sql.Conn, q string) string {
	rows, err := conn.QueryContext(ctx, q)
	if err == nil {
		var vals []string
		cols, _ := rows.Columns()
		for rows.Next() {
			v := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range v {
				ptrs[i] = &v[i]
			}
			if err = rows.Scan(ptrs...); err != nil {
				break
			}
			vals = append(vals, fmt.Sprint(v...))
		}
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
		if err == nil {
			return "rows " + strings.Join(vals, ",")
		}
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("error %d/%d", se.Code, se.ExtendedCode)
	}
	return "error " + err.Error()
}

// TestPragmaParity_SharedCache: with a shared cache, two connections share
// one file. While one of them is inside a transaction, the other's PRAGMA
// journal_mode=WAL gives unix's answer and leaves the file in unix's mode.
func TestPragmaParity_SharedCache(t *testing.T) {
	newEnv(t) // the replicator behind the verneuil VFS
	ctx := context.Background()
	for _, tc := range []struct {
		first []string
	}{
		{first: []string{"BEGIN IMMEDIATE", "INSERT INTO t VALUES(2)"}},
		{first: []string{"BEGIN IMMEDIATE"}},
		{first: []string{"BEGIN", "SELECT a FROM t"}},
	} {
		first := tc.first
		t.Run(strings.Join(first, "; "), func(t *testing.T) {
			answers := map[string]string{}
			for _, vfs := range []string{"unix", "verneuil"} {
				path := filepath.Join(t.TempDir(), "shared-"+vfs+".db")
				s, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix")
				if err != nil {
					t.Fatal(err)
				}
				mustExec(t, s, "CREATE TABLE t(a)")
				s.Close()
				db, err := sql.Open("sqlite3", "file:"+path+"?cache=shared&vfs="+vfs)
				if err != nil {
					t.Fatal(err)
				}
				a, err := db.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				b, err := db.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range first {
					if got := answer(ctx, a, q); strings.HasPrefix(got, "error") {
						t.Fatalf("%s: %s", q, got)
					}
				}
				got := answer(ctx, b, "PRAGMA journal_mode=WAL")
				answer(ctx, a, "ROLLBACK")
				mode := answer(ctx, b, "PRAGMA journal_mode")
				a.Close()
				b.Close()
				db.Close()
				answers[vfs] = got + "; then " + mode
				if u := answers["unix"]; vfs == "verneuil" && answers[vfs] != u {
					t.Errorf("verneuil answered %q, unix %q", answers[vfs], u)
				}
			}
			t.Logf("unix %q, verneuil %q", answers["unix"], answers["verneuil"])
		})
	}
}

// TestPragmaParity_ActiveStatement: PRAGMA journal_mode=WAL while another
// statement of the same connection is stepping (its SHARED lock held, no
// transaction opened by BEGIN) fails with unix's codes.
func TestPragmaParity_ActiveStatement(t *testing.T) {
	newEnv(t) // the replicator behind the verneuil VFS
	ctx := context.Background()
	answers := map[string]string{}
	for _, vfs := range []string{"unix", "verneuil"} {
		path := filepath.Join(t.TempDir(), "active.db")
		db, err := sql.Open("sqlite3", "file:"+path+"?vfs="+vfs)
		if err != nil {
			t.Fatal(err)
		}
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"CREATE TABLE t(a)", "INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(2)"} {
			if _, err := c.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := c.QueryContext(ctx, "SELECT a FROM t")
		if err != nil || !rows.Next() {
			t.Fatalf("SELECT: %v", err)
		}
		got := answer(ctx, c, "PRAGMA journal_mode=WAL")
		rows.Close()
		answers[vfs] = got + "; then " + answer(ctx, c, "PRAGMA journal_mode")
		c.Close()
		db.Close()
	}
	if answers["unix"] != answers["verneuil"] {
		t.Fatalf("verneuil answered %q, unix %q", answers["verneuil"], answers["unix"])
	}
	t.Logf("both answered %q", answers["unix"])
}
