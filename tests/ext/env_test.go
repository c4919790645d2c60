//go:build cgo

package ext

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestRegression_EnvironmentSetInProcess: a Python program that sets
// VERNEUIL_CONFIG in os.environ before loading the extension gets that
// configuration (the Go runtime of a shared library only sees the
// environment the process started with; the extension reads C's environ at
// load time), and one that sets XDG_DATA_HOME and unsets VERNEUIL_HOME gets
// the data directory under XDG_DATA_HOME rather than the one of its start-up
// environment. (Each sets a variable absent at start-up: C then moves its
// environ array, which the Go runtime of a shared library does not follow.)
func TestRegression_EnvironmentSetInProcess(t *testing.T) {
	py := python(t)
	script, err := filepath.Abs(filepath.Join("testdata", "setenv.py"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("config", func(t *testing.T) {
		e := newEnv(t, nil)
		spec := e.config
		e.config = "" // not in the start-up environment
		db := filepath.Join(e.dir, "setenv.db")
		sql := writeFile(t, e.dir, "workload.sql", workload(t))
		r := e.runHost("", py, script, soPath, db, sql, "VERNEUIL_CONFIG="+spec)
		if r.exitCode() != 0 {
			t.Fatalf("%s failed:\n%s", py, r)
		}
		key := testutil.ReplicaKey(t, testHost, db)
		if got, want := lines(r.stdout), []string{"ok", key}; !slices.Equal(got, want) {
			t.Fatalf("stdout = %q, want %q (the configuration set in os.environ was ignored)\n%s", got, want, r)
		}
		e.checkReplica(key, db)
		if _, err := os.Stat(filepath.Join(e.home, "verneuil")); err == nil {
			t.Fatalf("the embedded default's data directory %s was created", filepath.Join(e.home, "verneuil"))
		}
	})

	t.Run("home", func(t *testing.T) {
		e := newBareEnv(t)
		// Set XDG_DATA_HOME and unset VERNEUIL_HOME: the default data
		// directory is then XDG_DATA_HOME/verneuil.
		xdg := filepath.Join(e.dir, "xdg")
		if err := os.MkdirAll(xdg, 0o700); err != nil {
			t.Fatal(err)
		}
		e.store = filepath.Join(xdg, "verneuil", "store")
		db := filepath.Join(e.dir, "home.db")
		sql := writeFile(t, e.dir, "workload.sql", workload(t))
		r := e.runHost("", py, script, soPath, db, sql, "XDG_DATA_HOME="+xdg, "VERNEUIL_HOME=")
		if r.exitCode() != 0 {
			t.Fatalf("%s failed:\n%s", py, r)
		}
		host, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		key := testutil.ReplicaKey(t, host, db)
		if got := lines(r.stdout); len(got) != 2 || got[0] != "ok" {
			t.Fatalf("stdout = %q\n%s", got, r)
		}
		e.checkReplica(key, db)
	})
}
