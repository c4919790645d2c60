package verneuil_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/config"
)

// A replica connection that keeps SQLite's page cache follows the source
// through a shrink (VACUUM), a page size change, a database left with no
// table, and growth again: after each refresh it answers what the source
// answers.
func TestSnapshotFollowsShrinkGrowPageSize(t *testing.T) {
	e := snapEnv(t)
	ctx := context.Background()
	path := filepath.Join(e.dir, "shape.db")
	src := e.open(path, "_journal_mode=TRUNCATE")
	src.SetMaxOpenConns(1)
	const qShape = "SELECT (SELECT count(*) FROM sqlite_master) || ':' || " +
		"(SELECT page_size FROM pragma_page_size) || ':' || (SELECT page_count FROM pragma_page_count)"
	const qRows = "SELECT count(*) || ':' || sum(length(v)) || ':' || max(id) FROM t"
	steps := []struct{ what, sql string }{
		{"fill", "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); " +
			"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000) " +
			"INSERT INTO t(v) SELECT printf('%.*c', 200 + i % 300, 'x') FROM n"},
		{"shrink", "DELETE FROM t WHERE id > 100; VACUUM"},
		{"page size", "PRAGMA page_size=8192; VACUUM"},
		{"no table", "DROP TABLE t; VACUUM"},
		{"grow", "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); " +
			"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000) " +
			"INSERT INTO t(v) SELECT printf('%.*c', 100 + i % 400, 'y') FROM n"},
		{"small page size", "PRAGMA page_size=1024; VACUUM"},
	}
	var snapDB *sql.DB
	for i, st := range steps {
		mustExec(t, src, st.sql)
		if err := e.r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		q := qShape
		if st.what != "no table" {
			q = qShape + " || ':' || (" + qRows + ")"
		}
		want := queryString(t, src, q)
		if i == 0 {
			snapDB = openSnap(t, path, "")
			snapDB.SetMaxOpenConns(1)
		}
		queryString(t, snapDB, "PRAGMA verneuil_snapshot_refresh")
		if got := queryString(t, snapDB, q); got != want {
			t.Errorf("after %s: replica %s, source %s", st.what, got, want)
		}
		if got := queryString(t, snapDB, "PRAGMA quick_check"); got != "ok" {
			t.Errorf("after %s: quick_check %s", st.what, got)
		}
	}
}

// Many connections opening, reading, refreshing and closing one replica
// from goroutines while the source commits: every read transaction sees
// one committed state (the invariant holds), and a connection's versions
// never go back.
func TestSnapshotConcurrentConnectionsWhileCommitting(t *testing.T) {
	e := snapEnv(t, func(c *config.Config) { c.SnapshotRefreshInterval = 1 })
	ctx := context.Background()
	path := filepath.Join(e.dir, "busy.db")
	src := e.open(path, "_journal_mode=TRUNCATE")
	src.SetMaxOpenConns(1)
	mustExec(t, src, "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, pad TEXT)")
	if err := e.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		defer close(writerDone)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Each commit keeps sum(a) = 0 and adds two rows.
			if _, err := src.Exec("BEGIN; INSERT INTO t(a, pad) VALUES(?, randomblob(300)); "+
				"INSERT INTO t(a, pad) VALUES(?, randomblob(300)); COMMIT", i, -i); err != nil {
				writerDone <- err
				return
			}
			if i%5 == 0 {
				if err := e.r.Flush(ctx); err != nil {
					writerDone <- err
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 15 {
				db, err := sql.Open("sqlite3", "file:"+uriEscape(path)+"?vfs=verneuil_snapshot")
				if err != nil {
					errs <- err
					return
				}
				db.SetMaxOpenConns(1)
				var last uint64
				for k := range 4 {
					if (g+round+k)%3 == 0 {
						if _, err := db.Exec("PRAGMA verneuil_snapshot_refresh"); err != nil {
							errs <- fmt.Errorf("refresh: %w", err)
						}
					}
					var n, sum int64
					var seq uint64
					var at string
					tx, err := db.Begin()
					if err == nil {
						err = tx.QueryRow("SELECT count(*), coalesce(sum(a), 0) FROM t").Scan(&n, &sum)
					}
					if err == nil {
						var v string
						err = tx.QueryRow("PRAGMA verneuil_snapshot_version").Scan(&v)
						if err == nil {
							_, err = fmt.Sscan(v, &seq, &at)
						}
					}
					if tx != nil {
						tx.Rollback()
					}
					switch {
					case err != nil:
						errs <- err
					case n%2 != 0 || sum != 0:
						errs <- fmt.Errorf("a torn state: %d rows, sum %d", n, sum)
					case seq < last:
						errs <- fmt.Errorf("version went back from %d to %d", last, seq)
					}
					last = seq
				}
				db.Close()
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A replica attached to an ordinary connection is read only too: writes
// to it fail with SQLITE_READONLY, reads and writes of the main database
// work, and nothing is created beside the source.
func TestSnapshotAttachedIsReadOnly(t *testing.T) {
	e := snapEnv(t)
	path := filepath.Join(e.dir, "att.db")
	src := e.open(path, "")
	mustExec(t, src, "CREATE TABLE t(x)")
	mustExec(t, src, "INSERT INTO t VALUES(1)")
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := dirNames(t, e.dir)
	local, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "local.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	local.SetMaxOpenConns(1)
	mustExec(t, local, "ATTACH 'file:"+uriEscape(path)+"?vfs=verneuil_snapshot' AS s")
	mustExec(t, local, "CREATE TABLE l(y)")
	for _, q := range []string{
		"INSERT INTO s.t VALUES(2)",
		"CREATE TABLE s.u(y)",
		"PRAGMA s.journal_mode=WAL",
		"PRAGMA s.user_version=3",
		"VACUUM s",
		"BEGIN; INSERT INTO l VALUES(1); INSERT INTO s.t VALUES(3); COMMIT",
	} {
		_, err := local.Exec(q)
		if sqliteCode(err) != sqlite3.ErrReadonly {
			t.Errorf("%s: %v, want SQLITE_READONLY", q, err)
		}
		local.Exec("ROLLBACK")
	}
	mustExec(t, local, "INSERT INTO l SELECT x FROM s.t")
	if got := queryString(t, local, "SELECT (SELECT count(*) FROM s.t) || ':' || (SELECT count(*) FROM l)"); got != "1:1" {
		t.Errorf("after refused writes: %s, want 1:1", got)
	}
	if after := dirNames(t, e.dir); after != before {
		t.Errorf("files changed beside the database: %s -> %s", before, after)
	}
}

// VACUUM INTO a file named with the unix VFS copies the snapshot (as the
// README says); a plain path is opened as another replica and fails.
func TestSnapshotVacuumIntoLocalFile(t *testing.T) {
	e := snapEnv(t)
	path := filepath.Join(e.dir, "vi.db")
	src := e.open(path, "")
	mustExec(t, src, "CREATE TABLE t(x)")
	mustExec(t, src, "INSERT INTO t VALUES(1), (2), (3)")
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap := openSnap(t, path, "")
	out := filepath.Join(t.TempDir(), "copy.db")
	if _, err := snap.Exec("VACUUM INTO ?", out); sqliteCode(err) != sqlite3.ErrCantOpen {
		t.Errorf("VACUUM INTO a plain path: %v, want SQLITE_CANTOPEN", err)
	}
	mustExec(t, snap, "VACUUM INTO ?", "file:"+uriEscape(out)+"?vfs=unix")
	cp, err := sql.Open("sqlite3", "file:"+uriEscape(out)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if got := queryString(t, cp, "SELECT group_concat(x) FROM t"); got != "1,2,3" {
		t.Errorf("the copy has %q", got)
	}
}
