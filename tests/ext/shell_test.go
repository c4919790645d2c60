//go:build cgo

package ext

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// sqlite3Shell returns the sqlite3 shell (Debian's in CI).
func sqlite3Shell(t *testing.T) string {
	t.Helper()
	return lookPath(t, "sqlite3")
}

// shellScript is the shell input: load the library, open db (a URI or a
// path), run sql, then the extra dot-commands and statements.
func shellScript(open, sql string, after ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".load %s\n", soPath)
	fmt.Fprintf(&b, ".open %s\n", open)
	b.WriteString(sql)
	for _, a := range after {
		b.WriteString(a + "\n")
	}
	return b.String()
}

// The shell with a vfs=verneuil URI: randomised workload, PRAGMA
// verneuil_flush, restore, byte-identical. Also: loading twice is fine, and
// logs (here at info level) go to stderr, never stdout.
func TestShellURI(t *testing.T) {
	sh := sqlite3Shell(t)
	e := newEnv(t, map[string]any{"log_level": "info"})
	db := filepath.Join(e.dir, "shell.db")
	script := shellScript("file:"+db+"?vfs=verneuil", workload(t),
		".load "+soPath, // a second load is a no-op
		".vfsname", "PRAGMA verneuil_flush;", "PRAGMA verneuil_manifest_name;")
	r := e.runHost(script, sh, "-bail")
	if r.exitCode() != 0 {
		t.Fatalf("sqlite3 failed:\n%s", r)
	}
	key := testutil.ReplicaKey(t, testHost, db)
	if got, want := lines(r.stdout), []string{"verneuil/unix", "ok", key}; !slices.Equal(got, want) {
		t.Fatalf("stdout = %q, want %q (logs must not reach stdout)\n%s", got, want, r)
	}
	if !strings.Contains(r.stderr, "verneuil extension loaded") {
		t.Errorf("no info log on stderr:\n%s", r)
	}
	e.checkReplica(key, db)
}

// make_default: no vfs= parameter at all; .open after .load (a database
// named on the command line is opened before -cmd '.load', with plain unix).
func TestShellMakeDefault(t *testing.T) {
	sh := sqlite3Shell(t)
	e := newEnv(t, map[string]any{"make_default": true})
	db := filepath.Join(e.dir, "default.db")
	r := e.runHost(shellScript(db, workload(t), ".vfsname", "PRAGMA verneuil_flush;"), sh, "-bail")
	if r.exitCode() != 0 {
		t.Fatalf("sqlite3 failed:\n%s", r)
	}
	if got, want := lines(r.stdout), []string{"verneuil/unix", "ok"}; !slices.Equal(got, want) {
		t.Fatalf("stdout = %q, want %q\n%s", got, want, r)
	}
	if strings.Contains(r.stderr, "level=INFO") || strings.Contains(r.stderr, "level=DEBUG") {
		t.Errorf("info or debug logs at the default log level (warn):\n%s", r)
	}
	e.checkReplica(testutil.ReplicaKey(t, testHost, db), db)

	// The -cmd form, with .open after the load.
	db2 := filepath.Join(e.dir, "default2.db")
	r = e.runHost("", sh, "-bail", "-cmd", ".load "+soPath, "-cmd", ".open "+db2, ":memory:",
		"CREATE TABLE t(a); INSERT INTO t VALUES(randomblob(200000)); PRAGMA verneuil_flush;")
	if r.exitCode() != 0 || !slices.Equal(lines(r.stdout), []string{"ok"}) {
		t.Fatalf("sqlite3 -cmd .load -cmd .open:\n%s", r)
	}
	e.checkReplica(testutil.ReplicaKey(t, testHost, db2), db2)
}

// flush_on_close: no PRAGMA verneuil_flush; the shell's exit closes the
// connection, which uploads synchronously.
func TestShellFlushOnClose(t *testing.T) {
	sh := sqlite3Shell(t)
	e := newEnv(t, map[string]any{"flush_on_close": true, "upload_interval": "1h"})
	db := filepath.Join(e.dir, "close.db")
	r := e.runHost(shellScript("file:"+db+"?vfs=verneuil", workload(t)), sh, "-bail")
	if r.exitCode() != 0 {
		t.Fatalf("sqlite3 failed:\n%s", r)
	}
	e.checkReplica(testutil.ReplicaKey(t, testHost, db), db)
}

// A shell that exits without flushing leaves its spool behind; verneuilctl
// flush (run later, by anyone with the same configuration) uploads it.
func TestShellExitThenVerneuilctlFlush(t *testing.T) {
	sh := sqlite3Shell(t)
	ctl := testutil.Verneuilctl(t)
	e := newEnv(t, map[string]any{"upload_interval": "1h", "scan_interval": "1h"})
	db := filepath.Join(e.dir, "exit.db")
	r := e.runHost(shellScript("file:"+db+"?vfs=verneuil", workload(t)), sh, "-bail")
	if r.exitCode() != 0 {
		t.Fatalf("sqlite3 failed:\n%s", r)
	}
	r = e.runHost("", ctl, "flush")
	if r.exitCode() != 0 {
		t.Fatalf("verneuilctl flush:\n%s", r)
	}
	e.checkReplica(testutil.ReplicaKey(t, testHost, db), db)
}

// No VERNEUIL_CONFIG: the embedded default (spool and local target under
// VERNEUIL_HOME, the system host name) is used, and works.
func TestShellMissingConfig(t *testing.T) {
	sh := sqlite3Shell(t)
	e := newBareEnv(t)
	db := filepath.Join(e.dir, "bare.db")
	r := e.runHost(shellScript("file:"+db+"?vfs=verneuil", workload(t), "PRAGMA verneuil_flush;", "PRAGMA verneuil_manifest_name;"), sh, "-bail")
	if r.exitCode() != 0 {
		t.Fatalf("sqlite3 failed:\n%s", r)
	}
	out := lines(r.stdout)
	if len(out) != 2 || out[0] != "ok" {
		t.Fatalf("stdout = %q, want ok and the manifest name\n%s", out, r)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if want := testutil.ReplicaKey(t, host, db); out[1] != want {
		t.Errorf("manifest name %q, want %q (default host name %q)", out[1], want, host)
	}
	if _, err := os.Stat(filepath.Join(e.store, "dbs")); err != nil {
		t.Fatalf("the default target under VERNEUIL_HOME was not used: %v", err)
	}
	e.checkReplica(out[1], db)
}

// malformedConfigs are bad VERNEUIL_CONFIG values and what the error must
// name.
var malformedConfigs = []struct {
	name, config, want string
}{
	{"unknown key", `{"spool_dirr": "/tmp/x"}`, `unknown key "spool_dirr"`},
	{"bad JSON", `{"targets": [`, "invalid JSON"},
	{"missing file", "@/nonexistent/verneuil.json", "/nonexistent/verneuil.json"},
	{"bad value", `{"chunk_size": 1000}`, "chunk_size"},
	{"bad target", `{"targets": [{"url": "ftp://example/x"}]}`, "targets[0].url"},
	{"not JSON", `spool_dir=/tmp`, "VERNEUIL_CONFIG"},
}

// A malformed VERNEUIL_CONFIG: .load fails with a message naming the
// problem, the shell exits non-zero (with -bail, or at the end of a script),
// and the host never crashes.
func TestShellMalformedConfig(t *testing.T) {
	sh := sqlite3Shell(t)
	for _, c := range malformedConfigs {
		t.Run(c.name, func(t *testing.T) {
			e := newBareEnv(t)
			e.config = c.config
			r := e.runHost(".load "+soPath+"\nSELECT 'after load';\n", sh, "-bail")
			if r.exitCode() == 0 || strings.Contains(r.stdout, "after load") {
				t.Fatalf("load with a malformed config did not fail:\n%s", r)
			}
			if !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "verneuil") {
				t.Fatalf("error does not name the problem (want %q):\n%s", c.want, r)
			}
			// Without -bail the shell goes on: no VFS was registered.
			db := filepath.Join(e.dir, "x.db")
			r = e.runHost(".load "+soPath+"\nSELECT 'after load';\n.open file:"+db+"?vfs=verneuil\nSELECT 1;\n", sh)
			if r.exitCode() == 0 || !strings.Contains(r.stdout, "after load") || !strings.Contains(r.stderr, "no such vfs: verneuil") {
				t.Fatalf("shell without -bail:\n%s", r)
			}
			t.Logf("%s: %s", c.name, strings.TrimSpace(strings.Split(r.stderr, "\n")[0]))
		})
	}
}

// The library exports only the entry point and the C API, and needs no
// SQLite of its own.
func TestExportedSymbols(t *testing.T) {
	nm := lookPath(t, "nm")
	out, err := exec.Command(nm, "-D", "--defined-only", soPath).Output()
	if err != nil {
		t.Fatalf("nm: %v", err)
	}
	var got []string
	for _, l := range lines(string(out)) {
		f := strings.Fields(l)
		got = append(got, f[len(f)-1])
	}
	slices.Sort(got)
	want := []string{"sqlite3_verneuil_init", "verneuil_configure", "verneuil_flush", "verneuil_free", "verneuil_manifest_name"}
	if !slices.Equal(got, want) {
		t.Errorf("exported symbols %q, want %q", got, want)
	}
	out, err = exec.Command(nm, "-D", "--undefined-only", soPath).Output()
	if err != nil {
		t.Fatalf("nm: %v", err)
	}
	if strings.Contains(string(out), "sqlite3") {
		t.Errorf("the library needs SQLite symbols (it must call SQLite only through sqlite3_api):\n%s", out)
	}
}
