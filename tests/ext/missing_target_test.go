//go:build cgo

package ext

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestRegression_ExtensionMissingTarget: a file:// target whose directory
// is missing (an unmounted volume) does not stop the application: the
// extension loads, writes succeed and spool, and the replica catches up
// once the directory appears.
func TestRegression_ExtensionMissingTarget(t *testing.T) {
	sh := sqlite3Shell(t)
	ctl := testutil.Verneuilctl(t)
	missing := filepath.Join(t.TempDir(), "mnt", "store")
	e := newEnv(t, map[string]any{"targets": []map[string]any{{"url": "file://" + missing}}})
	db := filepath.Join(e.dir, "app.db")
	r := e.runHost(shellScript("file:"+db+"?vfs=verneuil",
		"CREATE TABLE t(a);\nINSERT INTO t VALUES(randomblob(300000));\nSELECT count(*) FROM t;\n"), sh, "-bail")
	if r.exitCode() != 0 || !slices.Equal(lines(r.stdout), []string{"1"}) {
		t.Fatalf("sqlite3 with the target directory missing:\n%s", r)
	}
	if err := os.MkdirAll(missing, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := e.runHost("", ctl, "flush"); r.exitCode() != 0 {
		t.Fatalf("verneuilctl flush once the directory exists:\n%s", r)
	}
	e.store = missing
	e.checkReplica(testutil.ReplicaKey(t, testHost, db), db)
}
