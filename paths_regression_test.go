package verneuil_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestRegression_DotDotAfterSymlinkNamesSQLitesFile: SQLite opens
// DIR/link/../x.db as x.db next to the link's target, element by element.
// The name verneuil gives that path (ReplicaName, which verneuilctl's
// restore, verify and manifest-name use) and FlushDB must designate the
// replica of the file SQLite wrote, not of DIR/x.db.
func TestRegression_DotDotAfterSymlinkNamesSQLitesFile(t *testing.T) {
	e := newEnv(t)
	dir, err := filepath.EvalSymlinks(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a", "b"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Another database at the textual answer DIR/x.db, replicated too.
	other := e.open(filepath.Join(dir, "x.db"), "_journal_mode=DELETE")
	mustExec(t, other, "CREATE TABLE other(x)")
	mustExec(t, other, "INSERT INTO other VALUES('not this one')")

	path := dir + "/link/../x.db"
	db := e.open(path, "_journal_mode=DELETE")
	mustExec(t, db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)")
	for i := range 20 {
		mustExec(t, db, "INSERT INTO t(b) VALUES(?)", i)
	}
	real := filepath.Join(dir, "a", "x.db")
	if _, err := os.Stat(real); err != nil {
		t.Fatalf("SQLite did not create %s: %v", real, err)
	}
	if err := e.r.FlushDB(ctx, path); err != nil {
		t.Fatalf("FlushDB(%s): %v", path, err)
	}
	if err := e.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, key, err := replicator.ReplicaName(e.cfg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	// The replica named for path is real's content.
	testutil.RestoreCompare(t, e.r.Targets()[0], key, real)
}
