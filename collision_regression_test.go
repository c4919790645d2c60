package verneuil_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestRegression_ReplicaNameCollisionAtRuntime: names maps one database
// to the default replica name of another, and both are open in the
// process. They would share one spool and one key, and the replica would
// alternate between them. The second one opened must pass through
// unreplicated (its writes succeed), and its flushes must fail naming the
// collision, while the first one's replica stays its own.
func TestRegression_ReplicaNameCollisionAtRuntime(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	x := filepath.Join(base, "a", "x.db")
	y := filepath.Join(base, "b", "y.db")
	e := newEnv(t, func(c *config.Config) {
		c.Names = map[string]string{x: names.Replica(c.Hostname, y)}
	})
	ctx := context.Background()

	dy := e.open(y, "_journal_mode=DELETE")
	mustExec(t, dy, "CREATE TABLE y(v)")
	mustExec(t, dy, "INSERT INTO y VALUES('the real y')")
	if err := e.r.FlushDB(ctx, y); err != nil {
		t.Fatalf("FlushDB(%s): %v", y, err)
	}

	dx := e.open(x, "_journal_mode=DELETE")
	mustExec(t, dx, "CREATE TABLE x(v)")
	for i := range 50 {
		mustExec(t, dx, "INSERT INTO x VALUES(?)", strings.Repeat("x", i*100))
	}
	var n int
	if err := dx.QueryRow("SELECT count(*) FROM x").Scan(&n); err != nil || n != 50 {
		t.Fatalf("writes to %s: count %d, err %v", x, n, err)
	}

	collision := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error, want one naming the replica name collision", what)
		}
		if msg := err.Error(); !strings.Contains(msg, x) || !strings.Contains(msg, y) {
			t.Fatalf("%s: %v; want an error naming %s and %s", what, err, x, y)
		}
	}
	var res string
	err = dx.QueryRow("PRAGMA verneuil_flush").Scan(&res)
	collision("PRAGMA verneuil_flush on "+x, err)
	collision("FlushDB("+x+")", e.r.FlushDB(ctx, x))
	collision("Flush", e.r.Flush(ctx))

	// y's replica is y, not x.
	mustExec(t, dy, "INSERT INTO y VALUES('still y')")
	if err := e.r.FlushDB(ctx, y); err != nil {
		t.Fatalf("FlushDB(%s): %v", y, err)
	}
	testutil.RestoreCompare(t, e.r.Targets()[0], e.key(y), y)
}

// TestRegression_NamesKeyThroughSymlink: a names key written through a
// symbolic link (/var/db/app.db with /var/db -> /srv/db) designates the file
// SQLite opens, /srv/db/app.db. Its override must apply (replication and
// ReplicaName, which verneuilctl uses) instead of being silently ignored
// for the default HOST:/srv/db/app.db.
func TestRegression_NamesKeyThroughSymlink(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	realDir := filepath.Join(base, "srv")
	if err := os.Mkdir(realDir, 0o700); err != nil {
		t.Fatal(err)
	}
	linkDir := filepath.Join(base, "var")
	if err := os.Symlink(realDir, linkDir); err != nil {
		t.Fatal(err)
	}
	viaLink := filepath.Join(linkDir, "app.db")
	e := newEnv(t, func(c *config.Config) {
		c.Names = map[string]string{viaLink: "app/main"}
	})
	ctx := context.Background()
	for _, p := range []string{viaLink, filepath.Join(realDir, "app.db")} {
		if name, _, err := replicator.ReplicaName(e.cfg, p, ""); err != nil || name != "app/main" {
			t.Fatalf("ReplicaName(%s) = %q, %v; want the configured \"app/main\"", p, name, err)
		}
	}
	db := e.open(viaLink, "_journal_mode=DELETE")
	mustExec(t, db, "CREATE TABLE t(v)")
	mustExec(t, db, "INSERT INTO t VALUES('hello')")
	if err := e.r.FlushDB(ctx, viaLink); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Latest(ctx, e.r.Targets()[0], names.Key("app/main")); err != nil {
		t.Fatalf("no replica under the configured name app/main: %v", err)
	}
}

// TestRegression_ReplacedFileIsNotACollision: a database file replaced
// under a live connection (restore --force renames the restored file over
// it) has a new inode, so a new connection gets a new tracker with the same
// replica name as the old connection's. That is one database at one path,
// not a name collision: the new file must be replicated.
func TestRegression_ReplacedFileIsNotACollision(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	path := filepath.Join(e.dir, "app.db")
	old := e.open(path, "_journal_mode=DELETE")
	old.SetMaxOpenConns(1)
	mustExec(t, old, "CREATE TABLE t(v)")
	mustExec(t, old, "INSERT INTO t VALUES('old')")
	// Replace the file (a new inode) while old stays open.
	other := filepath.Join(e.dir, "other.db")
	o := e.open(other, "_journal_mode=DELETE")
	mustExec(t, o, "CREATE TABLE t(v)")
	mustExec(t, o, "INSERT INTO t VALUES('new')")
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	db := e.open(path, "_journal_mode=DELETE")
	mustExec(t, db, "INSERT INTO t VALUES('after')")
	var res string
	if err := db.QueryRow("PRAGMA verneuil_flush").Scan(&res); err != nil {
		t.Fatalf("PRAGMA verneuil_flush on the replaced file: %v", err)
	}
	if err := e.r.FlushDB(ctx, path); err != nil {
		t.Fatalf("FlushDB on the replaced file: %v", err)
	}
	// The replica is the replaced file.
	testutil.RestoreCompare(t, e.r.Targets()[0], e.key(path), path)
}

// TestRegression_UnreplicatedPragmaFlushFails: a database whose spool
// cannot be created passes through unreplicated (its writes succeed), and
// PRAGMA verneuil_flush on it must fail with the reason, not be ignored as
// an unknown pragma (no row, no error: "flushed" to a caller that checks
// errors).
func TestRegression_UnreplicatedPragmaFlushFails(t *testing.T) {
	e := newEnv(t)
	dbs := filepath.Join(e.cfg.SpoolDir, "dbs")
	if err := os.RemoveAll(dbs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dbs, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dbs) })
	path := filepath.Join(e.dir, "unspooled.db")
	db := e.open(path, "_journal_mode=DELETE")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "CREATE TABLE t(a)")
	mustExec(t, db, "INSERT INTO t VALUES(1)")
	rows, err := db.Query("PRAGMA verneuil_flush")
	if err == nil {
		var got []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		err = rows.Err()
		rows.Close()
		if err == nil {
			t.Fatalf("PRAGMA verneuil_flush on an unreplicated database: rows %q and no error, want an error", got)
		}
	}
	if !strings.Contains(err.Error(), "not replicated") || !strings.Contains(err.Error(), path) {
		t.Fatalf("PRAGMA verneuil_flush: %v, want an error saying %s is not replicated", err, path)
	}
}
