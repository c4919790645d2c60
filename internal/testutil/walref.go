package testutil

import (
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// WALReference builds the reference for a replica of the WAL database at
// path (docs/ARCHITECTURE.md, byte-exactness invariant): with no commit
// or checkpoint running, DB and DB-wal are copied to a scratch directory
// and the copy is checkpointed with wal_checkpoint(TRUNCATE) through
// unix. The "sqlite3" driver must be registered.
func WALReference(t testing.TB, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "ref.db")
	for _, sfx := range []string{"", "-wal"} {
		in, err := os.Open(path + sfx)
		if os.IsNotExist(err) && sfx != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(dst + sfx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := sql.Open("sqlite3", "file:"+dst+"?vfs=unix")
	if err != nil {
		t.Fatal(err)
	}
	var busy, logFrames, ckpt int
	if err := ref.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &ckpt); err != nil || busy != 0 {
		t.Fatalf("checkpoint the reference copy: busy=%d %v", busy, err)
	}
	ref.Close()
	return dst
}
