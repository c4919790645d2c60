package verneuil_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestShimStress_MultiConnection opens and closes many connections to one
// database from several goroutines: tracked ones in several journal modes,
// some in locking_mode=EXCLUSIVE, readers that close while others write,
// and nolock connections that write (serialised against the others by the
// test, since nolock ignores SQLite's locks). Run under -asan by make test,
// it checks the shim's memory safety; the replica must match at the end.
func TestShimStress_MultiConnection(t *testing.T) {
	workers, rounds := 4, 12
	if testing.Short() {
		rounds = 6
	}
	e := newEnv(t)
	path := filepath.Join(e.dir, "stress.db")
	setup := e.open(path, "_journal_mode=DELETE")
	mustExec(t, setup, "CREATE TABLE t(id INTEGER PRIMARY KEY, w INTEGER, v BLOB)")
	if err := setup.Close(); err != nil {
		t.Fatal(err)
	}
	// nolockMu: nolock connections (which ignore SQLite's locks, and whose
	// journal other connections would take for a hot one) and exclusive
	// ones hold it exclusively while they work, the others shared. Closes
	// take no lock.
	var nolockMu sync.RWMutex
	ctx := context.Background()
	write := func(db *sql.DB, w, i int, immediate bool) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		begin := "BEGIN"
		if immediate {
			begin = "BEGIN IMMEDIATE"
		}
		for _, q := range []string{begin,
			fmt.Sprintf("INSERT INTO t(w, v) VALUES(%d, randomblob(%d))", w, 1000+i*7000),
			fmt.Sprintf("DELETE FROM t WHERE w = %d AND id %% 3 = 0", w),
			"COMMIT"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				conn.ExecContext(ctx, "ROLLBACK")
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	}
	modes := []string{"DELETE", "TRUNCATE", "PERSIST", "MEMORY"}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				mode := modes[(w+i)%len(modes)]
				var params string
				nolock, readOnly, exclusive := false, false, false
				switch (w + 2*i) % 4 {
				case 0:
					params = "_journal_mode=" + mode
				case 1:
					params = "_journal_mode=" + mode + "&_locking_mode=EXCLUSIVE"
					exclusive = true
				case 2:
					params = "nolock=1&_journal_mode=" + mode
					nolock = true
				case 3:
					params = "mode=ro"
					readOnly = true
				}
				db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&_busy_timeout=60000&"+params)
				if err != nil {
					t.Errorf("worker %d: open: %v", w, err)
					return
				}
				db.SetMaxOpenConns(1)
				err = func() error {
					switch {
					case exclusive:
						// Holds its locks until closed: alone.
						nolockMu.Lock()
						defer nolockMu.Unlock()
						defer db.Close()
					case nolock:
						nolockMu.Lock()
						defer nolockMu.Unlock()
					default:
						nolockMu.RLock()
						defer nolockMu.RUnlock()
					}
					var n int
					if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || readOnly {
						return err
					}
					return write(db, w, i, !nolock)
				}()
				// Other connections close while a nolock one writes.
				if cerr := db.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Errorf("worker %d round %d (%s): %v", w, i, params, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	db := e.open(path, "_journal_mode=DELETE")
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %q, %v", ok, err)
	}
	mustExec(t, db, "INSERT INTO t(w, v) VALUES(-1, randomblob(5000))")
	e.checkReplica(path)
}
