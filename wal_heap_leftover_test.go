package verneuil_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// crashedWAL leaves at path a WAL database as a writer killed before its
// checkpoint leaves it: a database file and a -wal with committed frames
// (and no -shm), made with the unix VFS and copied while open. torn
// appends the first half of a frame after the last commit.
func crashedWAL(t *testing.T, path string, torn bool) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src.db")
	plain, err := sql.Open("sqlite3", "file:"+src+"?vfs=unix&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetMaxOpenConns(1)
	mustExec(t, plain, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, plain, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	for i := range 100 {
		mustExec(t, plain, "INSERT INTO t VALUES(?, randomblob(900))", i)
	}
	mustExec(t, plain, "PRAGMA wal_checkpoint(PASSIVE)")
	for i := range 50 {
		mustExec(t, plain, "UPDATE t SET v=randomblob(800) WHERE id=?", i*2)
	}
	for _, sfx := range []string{"", "-wal"} {
		b, err := os.ReadFile(src + sfx)
		if err != nil {
			t.Fatal(err)
		}
		if torn && sfx == "-wal" {
			b = append(b, b[32:32+24+2048]...) // the first frame's header, a valid-looking start
		}
		if err := os.WriteFile(path+sfx, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWALHeap_LeftoverWAL: a database left with a -wal by a killed writer
// (whole frames, or a torn frame after them) is opened through the VFS
// with a heap-memory wal-index or a -shm. SQLite recovers the WAL; the
// replica after the first commits is the checkpointed reference, and so
// after the connection closed and the other mode commits.
func TestWALHeap_LeftoverWAL(t *testing.T) {
	heap, normal := "_locking_mode=EXCLUSIVE", ""
	for _, tc := range []struct {
		name         string
		torn         bool
		first, other string
	}{
		{"heap then normal", false, heap, normal},
		{"torn, heap then normal", true, heap, normal},
		{"normal then heap", false, normal, heap},
		{"torn, normal then heap", true, normal, heap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "left.db")
			crashedWAL(t, path, tc.torn)
			db := e.open(path, tc.first)
			db.SetMaxOpenConns(1)
			var n int
			if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 100 {
				t.Fatalf("count: %d %v", n, err)
			}
			mustExec(t, db, "UPDATE t SET v=randomblob(700) WHERE id=99")
			e.checkWALReplica(t, path)
			mustExec(t, db, "INSERT INTO t VALUES(500, randomblob(3000))")
			e.checkWALReplica(t, path)
			db.Close()
			crashedWALAppend(t, path)
			db = e.open(path, tc.other)
			db.SetMaxOpenConns(1)
			mustExec(t, db, "UPDATE t SET v=randomblob(600) WHERE id=98")
			e.checkWALReplica(t, path)
			w := &workload{t: t, db: db}
			w.integrityOK()
		})
	}
}

// crashedWALAppend leaves a -wal of committed frames next to the closed
// database at path again, written by a unix connection that is copied
// before it closes.
func crashedWALAppend(t *testing.T, path string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	plain, err := sql.Open("sqlite3", "file:"+src+"?vfs=unix")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetMaxOpenConns(1)
	mustExec(t, plain, "PRAGMA wal_autocheckpoint=0")
	for i := range 20 {
		mustExec(t, plain, "UPDATE t SET v=randomblob(500) WHERE id=?", 10+i*3)
	}
	w, err := os.ReadFile(src + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-wal", w, 0o644); err != nil {
		t.Fatal(err)
	}
}
