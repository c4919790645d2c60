package verneuil_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/config"
)

// snapEnv is newEnv with the snapshot caches in the test's directory.
func snapEnv(t *testing.T, mutate ...func(*config.Config)) *env {
	t.Helper()
	return newEnv(t, append([]func(*config.Config){func(c *config.Config) {
		c.CacheDir = filepath.Join(filepath.Dir(c.SpoolDir), "cache")
	}}, mutate...)...)
}

// openSnap opens a read replica: name is a path, verneuil:// name, key or
// manifest file; params are extra URI parameters.
func openSnap(t testing.TB, name, params string) *sql.DB {
	t.Helper()
	dsn := "file:" + uriEscape(name) + "?vfs=verneuil_snapshot"
	if params != "" {
		dsn += "&" + params
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// uriEscape escapes what SQLite's URI parser would decode or cut at.
func uriEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return r.Replace(s)
}

func queryString(t testing.TB, db interface {
	QueryRow(string, ...any) *sql.Row
}, q string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := db.QueryRow(q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s.String
}

func sqliteCode(err error) sqlite3.ErrNo {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return -1
}

func TestSnapshotReadsReplica(t *testing.T) {
	e := snapEnv(t)
	path := filepath.Join(e.dir, "app.db")
	db := e.open(path, "_journal_mode=TRUNCATE")
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	for i := range 2000 {
		mustExec(t, db, "INSERT INTO t(v) VALUES(?)", strings.Repeat(fmt.Sprint(i), 50))
	}
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := queryString(t, db, "SELECT sum(length(v)) || ':' || count(*) FROM t")
	for _, name := range []string{path, "verneuil:///" + strings.TrimPrefix(path, "/"), "verneuil://testhost" + path, e.key(path)} {
		t.Run(url.PathEscape(name), func(t *testing.T) {
			snap := openSnap(t, name, "")
			if got := queryString(t, snap, "SELECT sum(length(v)) || ':' || count(*) FROM t"); got != want {
				t.Fatalf("replica says %s, source %s", got, want)
			}
		})
	}
}
