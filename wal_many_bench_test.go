package verneuil_test

import (
	"database/sql"
	"fmt"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
	"path/filepath"
	"testing"
)

// BenchmarkWALCommitManyOpen times single-row commits to one WAL database
// (synchronous=NORMAL) while the process has `open` other WAL databases
// open through the same VFS, each with its -wal open, through unix and
// through verneuil. A commit's capture looks at its own database's -wal
// files only: through verneuil the time per commit should grow with the
// others no more than it does through unix (SQLite and database/sql do
// more with more databases open too). Compare the sub-benchmarks of one
// run:
//
//	go test -run '^$' -bench BenchmarkWALCommitManyOpen -benchtime 20000x .
func BenchmarkWALCommitManyOpen(b *testing.B) {
	for _, tc := range []struct {
		vfs  string
		open int
	}{{"unix", 0}, {"unix", 500}, {"verneuil", 0}, {"verneuil", 500}} {
		vfs, open := tc.vfs, tc.open
		b.Run(fmt.Sprintf("%s/open=%d", vfs, open), func(b *testing.B) {
			e := newEnv(b)
			for i := range open {
				db := openWALVFS(b, filepath.Join(e.dir, fmt.Sprintf("other%d.db", i)), vfs)
				db.SetMaxOpenConns(1)
				mustExec(b, db, "CREATE TABLE t(a)")
				defer db.Close()
			}
			db := openWALVFS(b, filepath.Join(e.dir, "hot.db"), vfs)
			defer db.Close()
			db.SetMaxOpenConns(1)
			mustExec(b, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
			stmt, err := db.Prepare("INSERT INTO t(a, b) VALUES(?, 'some text payload for the row')")
			if err != nil {
				b.Fatal(err)
			}
			defer stmt.Close()
			s0 := sqlite3vfs.ReadStats()
			b.ResetTimer()
			defer func() {
				if vfs == "verneuil" {
					s1 := sqlite3vfs.ReadStats()
					b.Logf("commits %d queued %d", s1.WALCommits-s0.WALCommits, s1.WALQueued-s0.WALQueued)
				}
			}()
			for i := range b.N {
				if _, err := stmt.Exec(i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// openWALVFS opens path in WAL mode, synchronous=NORMAL, through vfs.
func openWALVFS(b *testing.B, path, vfs string) *sql.DB {
	db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=%s&_journal_mode=WAL&_sync=NORMAL", path, vfs))
	if err != nil {
		b.Fatal(err)
	}
	return db
}
