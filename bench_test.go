package verneuil_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkCommit compares single-row autocommit transactions with
// synchronous=OFF (no fsync hides the VFS's work) through the unix VFS and
// through verneuil with replication on to a local target. Compare the two
// sub-benchmarks of one run (benchstat, or cmd/verneuil-bench for
// interleaved rounds).
func BenchmarkCommit(b *testing.B) {
	for _, vfs := range []string{"unix", "verneuil"} {
		b.Run(vfs, func(b *testing.B) {
			newEnv(b)
			path := filepath.Join(b.TempDir(), "bench.db")
			db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=%s&_journal_mode=TRUNCATE&_sync=OFF", path, vfs))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			mustExec(b, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
			stmt, err := db.Prepare("INSERT INTO t(a, b) VALUES(?, 'some text payload for the row')")
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := stmt.Exec(i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
