package verneuil_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// TestRegression_WrittenRangesSquash runs bursts of small commits through
// the VFS, faster than the background build squashes them, so that most
// commits refresh pending chunk copies by re-reading only the byte ranges
// they wrote: updates spread over many chunks, savepoints rolled back
// after the page cache spilled to the file mid-transaction, growth,
// deletes and VACUUM (which shrinks the file), and two connections
// committing in turn. After every burst the replica must be the file, byte
// for byte (invariant 1).
func TestRegression_WrittenRangesSquash(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "ranges.db")
	a := e.open(path, "_journal_mode=TRUNCATE&_sync=OFF")
	a.SetMaxOpenConns(1)
	b := e.open(path, "_journal_mode=TRUNCATE&_sync=OFF&_busy_timeout=5000")
	b.SetMaxOpenConns(1)
	mustExec(t, a, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	mustExec(t, a, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 3000) INSERT INTO t(v) SELECT randomblob(300) FROM s")
	rng := rand.New(rand.NewPCG(7, 8))
	bursts := []struct {
		name string
		step func(i int)
	}{
		{"spread updates", func(i int) {
			mustExec(t, a, "UPDATE t SET v = randomblob(300) WHERE id = ?", 1+rng.IntN(3000))
		}},
		{"two connections", func(i int) {
			db := a
			if i%2 == 1 {
				db = b
			}
			mustExec(t, db, "UPDATE t SET v = randomblob(290 + ?) WHERE id = ?", rng.IntN(20), 1+rng.IntN(3000))
		}},
		{"growth", func(i int) {
			mustExec(t, a, "INSERT INTO t(v) VALUES(randomblob(?))", 100+rng.IntN(3000))
		}},
		{"rolled-back savepoints after a cache spill", func(i int) {
			tx, err := a.Begin()
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				"PRAGMA cache_size = 2",
				"SAVEPOINT s",
				fmt.Sprintf("UPDATE t SET v = randomblob(300) WHERE id %% 97 = %d", rng.IntN(97)),
				"ROLLBACK TO s",
				fmt.Sprintf("UPDATE t SET v = randomblob(300) WHERE id = %d", 1+rng.IntN(3000)),
				"RELEASE s",
			} {
				mustExec(t, tx, q)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			mustExec(t, a, "PRAGMA cache_size = -2000")
		}},
		{"deletes and vacuum", func(i int) {
			if i%10 == 9 {
				mustExec(t, a, "VACUUM")
				return
			}
			mustExec(t, a, "DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 20)")
		}},
	}
	for _, burst := range bursts {
		for i := range 60 {
			burst.step(i)
		}
		e.checkReplica(path)
		t.Logf("%s: replica matches", burst.name)
	}
}
