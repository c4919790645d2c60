//go:build cgo

package ext

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// python returns a python3 whose sqlite3 module can load extensions:
// Debian's /usr/bin/python3 first (pyenv and other source builds often lack
// --enable-loadable-sqlite-extensions), then python3 from PATH.
func python(t *testing.T) string {
	t.Helper()
	var tried []string
	cands := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	script := filepath.Join("testdata", "host.py")
	for _, p := range cands {
		out, err := exec.Command(p, script, "", "", "", "check").CombinedOutput()
		if err == nil {
			t.Logf("python host: %s", p)
			return p
		}
		t.Logf("%s cannot load extensions: %s", p, strings.TrimSpace(string(out)))
		tried = append(tried, p+": "+strings.TrimSpace(string(out))+" ("+err.Error()+")")
	}
	need(t, false, "no python3 with sqlite3 extension loading: %s", strings.Join(tried, "; "))
	return ""
}

func runPython(t *testing.T, e *env, py, db, mode string) result {
	t.Helper()
	sql := writeFile(t, e.dir, "workload.sql", workload(t))
	script, err := filepath.Abs(filepath.Join("testdata", "host.py"))
	if err != nil {
		t.Fatal(err)
	}
	return e.runHost("", py, script, soPath, db, sql, mode)
}

// Python's sqlite3: enable_load_extension + load_extension, a vfs=verneuil
// URI, the workload, PRAGMA verneuil_flush, restore, byte-identical.
func TestPythonURI(t *testing.T) {
	py := python(t)
	e := newEnv(t, nil)
	db := filepath.Join(e.dir, "py.db")
	r := runPython(t, e, py, db, "uri")
	if r.exitCode() != 0 {
		t.Fatalf("%s failed:\n%s", py, r)
	}
	key := testutil.ReplicaKey(t, testHost, db)
	if got, want := lines(r.stdout), []string{"ok", key}; !slices.Equal(got, want) {
		t.Fatalf("stdout = %q, want %q\n%s", got, want, r)
	}
	e.checkReplica(key, db)
}

// Python with make_default: plain sqlite3.connect(path).
func TestPythonMakeDefault(t *testing.T) {
	py := python(t)
	e := newEnv(t, map[string]any{"make_default": true})
	db := filepath.Join(e.dir, "pydefault.db")
	r := runPython(t, e, py, db, "default")
	if r.exitCode() != 0 {
		t.Fatalf("%s failed:\n%s", py, r)
	}
	key := testutil.ReplicaKey(t, testHost, db)
	if got, want := lines(r.stdout), []string{"ok", key}; !slices.Equal(got, want) {
		t.Fatalf("stdout = %q, want %q\n%s", got, want, r)
	}
	e.checkReplica(key, db)
}

// Python with a malformed VERNEUIL_CONFIG: load_extension raises
// sqlite3.OperationalError naming the problem; the interpreter survives.
func TestPythonMalformedConfig(t *testing.T) {
	py := python(t)
	for _, c := range malformedConfigs[:3] {
		t.Run(c.name, func(t *testing.T) {
			e := newBareEnv(t)
			e.config = c.config
			r := runPython(t, e, py, filepath.Join(e.dir, "x.db"), "uri")
			if r.exitCode() != 4 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("want load_extension to fail naming %q:\n%s", c.want, r)
			}
		})
	}
}

// TestPythonForkWithoutExec: a child forked without exec can use the VFS
// (it passes through there) without hanging, and the parent's next commit
// captures the child's write (identity mismatch → rescan).
func TestPythonForkWithoutExec(t *testing.T) {
	py := python(t)
	e := newEnv(t, nil)
	db := filepath.Join(e.dir, "fork.db")
	script, err := filepath.Abs(filepath.Join("testdata", "fork.py"))
	if err != nil {
		t.Fatal(err)
	}
	r := e.runHost("", py, script, soPath, db)
	if r.exitCode() != 0 {
		t.Fatalf("%s failed:\n%s", py, r)
	}
	if got, want := lines(r.stdout), []string{"ok", "2"}; !slices.Equal(got, want) {
		t.Fatalf("stdout = %q, want %q\n%s", got, want, r)
	}
	e.checkReplica(testutil.ReplicaKey(t, testHost, db), db)
}

// TestPythonForkWithoutExecWAL: TestPythonForkWithoutExec in WAL mode,
// with commits queued by the VFS before and after the fork (a child's
// queue operations would deadlock on a mutex a parent thread held at
// fork()): the parent's commits after the child's writes capture them,
// and the replica is the database.
func TestPythonForkWithoutExecWAL(t *testing.T) {
	py := python(t)
	e := newEnv(t, nil)
	db := filepath.Join(e.dir, "forkwal.db")
	script, err := filepath.Abs(filepath.Join("testdata", "fork_wal.py"))
	if err != nil {
		t.Fatal(err)
	}
	r := e.runHost("", py, script, soPath, db)
	if r.exitCode() != 0 {
		t.Fatalf("%s failed:\n%s", py, r)
	}
	if got, want := lines(r.stdout), []string{"ok", "450"}; !slices.Equal(got, want) {
		t.Fatalf("stdout = %q, want %q\n%s", got, want, r)
	}
	e.checkReplica(testutil.ReplicaKey(t, testHost, db), db)
}

// TestRegression_ForkChildMarksRescan: a child forked without exec writes
// with capture switched off; it leaves the rescan marker in the database's
// spool directory (spool.RescanMarker), whether it writes through a
// connection of its own or one inherited from the parent.
func TestRegression_ForkChildMarksRescan(t *testing.T) {
	py := python(t)
	e := newEnv(t, map[string]any{"scan_interval": "1h"})
	db := filepath.Join(e.dir, "forkmarker.db")
	script, err := filepath.Abs(filepath.Join("testdata", "forkmarker.py"))
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(spool.DBsDir(e.spool), testutil.ReplicaKey(t, testHost, db), spool.RescanMarker)
	r := e.runHost("", py, script, soPath, db, marker)
	if r.exitCode() != 0 {
		t.Fatalf("%s failed:\n%s", py, r)
	}
	if got, want := lines(r.stdout), []string{"before False", "own True", "inherited True", "2"}; !slices.Equal(got, want) {
		t.Fatalf("stdout = %q, want %q\n%s", got, want, r)
	}
}
