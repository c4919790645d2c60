package verneuil_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// workload applies random transactions to db: inserts, updates, deletes,
// blobs spanning chunks, schema changes, VACUUM, growth and shrink,
// rollbacks and savepoints.
type workload struct {
	t      testing.TB
	db     *sql.DB
	rng    *rand.Rand
	tables int
	// noRollback avoids rollbacks: with journal_mode=OFF they are
	// undefined behaviour in SQLite and corrupt the database.
	noRollback bool
}

func newWorkload(t testing.TB, db *sql.DB, seed uint64) *workload {
	w := &workload{t: t, db: db, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	mustExec(t, db, "CREATE TABLE IF NOT EXISTS t0(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
	mustExec(t, db, "CREATE INDEX IF NOT EXISTS t0k ON t0(k)")
	w.tables = 1
	return w
}

func (w *workload) blob(max int) []byte {
	b := make([]byte, w.rng.IntN(max)+1)
	for i := range b {
		b[i] = byte(w.rng.IntN(256))
	}
	return b
}

func (w *workload) table() string { return "t" + strconv.Itoa(w.rng.IntN(w.tables)) }

// step runs one transaction (or a rolled-back one).
func (w *workload) step() {
	t := w.t
	op := w.rng.IntN(100)
	if w.noRollback && op >= 75 {
		op = 0
	}
	if os.Getenv("VERNEUIL_TRACE_OPS") != "" {
		t.Logf("op %d", op)
	}
	switch {
	case op < 30: // small inserts in one transaction
		tx := w.begin()
		tbl := w.table()
		for range w.rng.IntN(20) + 1 {
			mustExec(t, tx, "INSERT INTO "+tbl+"(k, v) VALUES(?, ?)", w.rng.IntN(1000), w.blob(200))
		}
		w.commit(tx)
	case op < 40: // a blob spanning chunks
		mustExec(t, w.db, "INSERT INTO "+w.table()+"(k, v) VALUES(?, ?)", w.rng.IntN(1000), w.blob(200_000))
	case op < 55:
		mustExec(t, w.db, "UPDATE "+w.table()+" SET v = ? WHERE k % 7 = ?", w.blob(300), w.rng.IntN(7))
	case op < 65:
		mustExec(t, w.db, "DELETE FROM "+w.table()+" WHERE k % 5 = ?", w.rng.IntN(5))
	case op < 70: // schema change
		if w.tables < 4 {
			name := "t" + strconv.Itoa(w.tables)
			mustExec(t, w.db, "CREATE TABLE "+name+"(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
			w.tables++
		} else {
			mustExec(t, w.db, "CREATE INDEX IF NOT EXISTS idx"+strconv.Itoa(w.rng.IntN(100))+" ON "+w.table()+"(v)")
		}
	case op < 75: // shrink
		mustExec(t, w.db, "DELETE FROM "+w.table()+" WHERE length(v) > 1000")
		if os.Getenv("VERNEUIL_TRACE_OPS") != "" {
			t.Logf("vacuum")
		}
		mustExec(t, w.db, "VACUUM")
	case op < 85: // rollback after enough writes to spill the cache
		tx := w.begin()
		tbl := w.table()
		for range w.rng.IntN(50) + 1 {
			mustExec(t, tx, "INSERT INTO "+tbl+"(k, v) VALUES(?, ?)", w.rng.IntN(1000), w.blob(20_000))
		}
		if err := tx.Rollback(); err != nil {
			t.Fatalf("rollback: %v", err)
		}
	default: // savepoints: one released, one rolled back
		tx := w.begin()
		tbl := w.table()
		mustExec(t, tx, "SAVEPOINT a")
		mustExec(t, tx, "INSERT INTO "+tbl+"(k, v) VALUES(?, ?)", w.rng.IntN(1000), w.blob(5000))
		mustExec(t, tx, "RELEASE a")
		mustExec(t, tx, "SAVEPOINT b")
		mustExec(t, tx, "DELETE FROM "+tbl)
		mustExec(t, tx, "ROLLBACK TO b")
		mustExec(t, tx, "RELEASE b")
		w.commit(tx)
	}
}

func (w *workload) begin() *sql.Tx {
	tx, err := w.db.Begin()
	if err != nil {
		w.t.Fatalf("begin: %v", err)
	}
	return tx
}

func (w *workload) commit(tx *sql.Tx) {
	if err := tx.Commit(); err != nil {
		w.t.Fatalf("commit: %v", err)
	}
}

func (w *workload) integrityOK() {
	var res string
	if err := w.db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		w.t.Fatalf("integrity_check: %q %v", res, err)
	}
}

func TestReplication_RandomWorkloads(t *testing.T) {
	steps := 40
	if testing.Short() {
		steps = 12
	}
	for _, pageSize := range []int{512, 4096, 65536} {
		for _, mode := range []string{"DELETE", "TRUNCATE", "PERSIST", "MEMORY", "OFF"} {
			for _, locking := range []string{"NORMAL", "EXCLUSIVE"} {
				name := fmt.Sprintf("page%d/%s/%s", pageSize, mode, locking)
				t.Run(name, func(t *testing.T) {
					e := newEnv(t)
					path := filepath.Join(e.dir, "w.db")
					db := e.open(path, fmt.Sprintf("_journal_mode=%s&_locking_mode=%s", mode, locking))
					db.SetMaxOpenConns(1)
					mustExec(t, db, fmt.Sprintf("PRAGMA page_size=%d", pageSize))
					w := newWorkload(t, db, uint64(pageSize)*31+uint64(len(mode)+len(locking)))
					w.noRollback = mode == "OFF"
					every := 10
					if os.Getenv("VERNEUIL_CHECK_EVERY_COMMIT") != "" {
						every = 1
					}
					for i := range steps {
						w.step()
						if i%every == every-1 {
							e.checkReplica(path)
						}
					}
					w.integrityOK()
					e.checkReplica(path)
				})
			}
		}
	}
}

// TestReplication_EveryCommit checks the invariant after every single
// commit (the per-commit test mode).
func TestReplication_EveryCommit(t *testing.T) {
	for _, mode := range []string{"DELETE", "PERSIST"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "every.db")
			db := e.open(path, "_journal_mode="+mode)
			db.SetMaxOpenConns(1)
			w := newWorkload(t, db, 7)
			e.checkReplica(path)
			for range 25 {
				w.step()
				e.checkReplica(path)
			}
		})
	}
}

// TestReplication_ConnectionsInOneProcess writes from several connections.
func TestReplication_ConnectionsInOneProcess(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "multi.db")
	var dbs []*sql.DB
	for range 3 {
		db := e.open(path, "_journal_mode=DELETE&_busy_timeout=10000")
		db.SetMaxOpenConns(1)
		dbs = append(dbs, db)
	}
	mustExec(t, dbs[0], "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)")
	done := make(chan error, len(dbs))
	for i, db := range dbs {
		go func() {
			for j := range 30 {
				if _, err := db.Exec("INSERT INTO t(b) VALUES(?)", fmt.Sprint(i, "-", j, string(make([]byte, 3000)))); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range dbs {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	e.checkReplica(path)
}

// TestReplication_TempAndMemoryUnaffected: temp and in-memory databases
// work through the VFS and are not replicated.
func TestReplication_TempAndMemoryUnaffected(t *testing.T) {
	e := newEnv(t)
	for _, dsn := range []string{"file::memory:?vfs=verneuil", "file:?vfs=verneuil"} {
		db, err := sql.Open("sqlite3", dsn)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, "CREATE TABLE t(a)")
		mustExec(t, db, "INSERT INTO t VALUES(1)")
		var n int
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: count %d, %v", dsn, n, err)
		}
		db.Close()
	}
	ents, _ := os.ReadDir(filepath.Join(e.cfg.SpoolDir, "dbs"))
	if len(ents) != 0 {
		t.Fatalf("temp/memory databases were spooled: %v", ents)
	}
}
