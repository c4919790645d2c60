//go:build cgo

package ext

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// gcc compiles a test host; a missing gcc or libsqlite3-dev is a missing
// host.
func gcc(t *testing.T, out string, args ...string) {
	t.Helper()
	cc := lookPath(t, "gcc")
	_, err := os.Stat("/usr/include/sqlite3.h")
	need(t, err == nil, "sqlite3.h (libsqlite3-dev) not found")
	cmd := exec.Command(cc, append([]string{"-O1", "-Wall", "-Werror", "-o", out}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// wantLines checks that every want line appears in stdout, in order.
func wantLines(t *testing.T, r result, want ...string) {
	t.Helper()
	got := lines(r.stdout)
	i := 0
	for _, l := range got {
		if i < len(want) && l == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("stdout lacks %q (in order %q):\n%s", want[i], want, r)
	}
}

// A C program linked only against the system libsqlite3: it loads the
// extension with sqlite3_load_extension, writes through vfs=verneuil,
// flushes with PRAGMA verneuil_flush, and uses the C API through dlsym.
func TestCLoadExtension(t *testing.T) {
	e := newEnv(t, nil)
	bin := filepath.Join(e.dir, "host")
	gcc(t, bin, filepath.Join("testdata", "host.c"), "-lsqlite3", "-ldl")
	db := filepath.Join(e.dir, "c.db")
	sql := writeFile(t, e.dir, "workload.sql", workload(t))
	r := e.runHost("", bin, soPath, db, sql)
	if r.exitCode() != 0 {
		t.Fatalf("host failed:\n%s", r)
	}
	key := testutil.ReplicaKey(t, testHost, db)
	wantLines(t, r, "loaded", "pragma_flush ok", "manifest_name "+key, "flush_db 0 ok", "flush_all 0 ok", "flush_missing 1 named", "done")
	if strings.Contains(r.stdout, "level=") {
		t.Errorf("logs on stdout:\n%s", r)
	}
	e.checkReplica(key, db)
}

// A C program linked against libverneuil.so (-lverneuil) and the system
// libsqlite3: verneuil_configure instead of VERNEUIL_CONFIG, then
// sqlite3_load_extension, and the C API called directly.
func TestCLinked(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config
	e.config = `{"targets": [{"url": "file:///nonexistent/must-not-be-used"}]}` // overridden by verneuil_configure
	lib := filepath.Join(e.dir, "lib")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	so := filepath.Join(lib, "libverneuil.so")
	if err := os.Symlink(soPath, so); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(e.dir, "host-linked")
	gcc(t, bin, "-DVERNEUIL_LINKED", "-I", filepath.Join(repoRoot, "include"), filepath.Join("testdata", "host.c"),
		"-L", lib, "-lverneuil", "-lsqlite3", "-Wl,-rpath,"+lib)
	db := filepath.Join(e.dir, "linked.db")
	sql := writeFile(t, e.dir, "workload.sql", workload(t))
	r := e.runHost("", bin, so, db, sql, cfg)
	if r.exitCode() != 0 {
		t.Fatalf("host failed:\n%s", r)
	}
	key := testutil.ReplicaKey(t, testHost, db)
	wantLines(t, r, "configure ok", "loaded", "pragma_flush ok", "configure_after_load 21", "manifest_name "+key,
		"flush_db 0 ok", "flush_all 0 ok", "flush_missing 1 named", "done")
	e.checkReplica(key, db)

	// A bad configuration given to verneuil_configure is reported at once.
	r = e.runHost("", bin, so, db, sql, `{"chunk_size": 3}`)
	if r.exitCode() != 3 || !strings.Contains(r.stderr, "chunk_size") {
		t.Fatalf("verneuil_configure with a bad configuration:\n%s", r)
	}
}

// The version check of the entry point: an SQLite older than 3.40.0 is
// refused with a message naming both versions (a fake sqlite3_api_routines
// stands in for an old SQLite), and a NULL pApi is SQLITE_MISUSE.
func TestCVersionCheck(t *testing.T) {
	e := newBareEnv(t)
	bin := filepath.Join(e.dir, "oldsqlite")
	gcc(t, bin, filepath.Join("testdata", "oldsqlite.c"), "-ldl")
	r := e.runHost("", bin, soPath)
	if r.exitCode() != 0 {
		t.Fatalf("oldsqlite failed:\n%s", r)
	}
	wantLines(t, r, "null_api 21",
		"old_sqlite 1 verneuil: SQLite 3.39.4 is too old: libverneuil needs SQLite 3.40.0 or newer")
}
