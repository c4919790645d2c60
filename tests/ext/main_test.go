//go:build cgo

// Package ext tests the loadable extension libverneuil.so in real hosts:
// Debian's sqlite3 shell, Python 3's sqlite3 module and C programs built
// with gcc against the system libsqlite3. Each host writes through the VFS,
// flushes, and the replica restored from the local target must be
// byte-identical to the database file.
//
// TestMain builds the library once with scripts/build-ext.sh (or uses
// $VERNEUIL_EXT). A missing host (scripts/install-test-hosts.sh installs
// them) skips its tests locally and fails them when CI=true.
package ext

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// soPath is the library under test.
var soPath string

// repoRoot is the module's root directory.
var repoRoot string

// workDir holds what the tests build (removed at the end).
var workDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Join(wd, "..", "..")
	workDir, err = os.MkdirTemp("", "verneuil-ext-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	if p := os.Getenv("VERNEUIL_EXT"); p != "" {
		soPath, err = filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	} else {
		soPath = filepath.Join(workDir, "libverneuil.so")
		cmd := exec.Command("sh", filepath.Join(repoRoot, "scripts", "build-ext.sh"), soPath)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build libverneuil.so:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "built %s in %v\n", soPath, time.Since(start).Round(time.Millisecond))
	}
	if _, err := os.Stat(soPath); err != nil {
		fmt.Fprintln(os.Stderr, "libverneuil.so:", err)
		return 1
	}
	defer testutil.RemoveBuilt()
	return m.Run()
}

// need reports a missing host: it fails the test in CI (CI=true), where
// scripts/install-test-hosts.sh must have installed every host, and skips
// it elsewhere.
func need(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...) + " (install with scripts/install-test-hosts.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal("missing test host: " + msg)
	}
	t.Skip("missing test host: " + msg)
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	need(t, err == nil, "%s not found in PATH", name)
	return p
}

// testHost is the host name the tests' configurations set.
const testHost = "ext-test-host"

// env is one isolated verneuil setup: HOME, VERNEUIL_HOME, a spool and a
// local target in a temp dir, and VERNEUIL_CONFIG pointing at a config file.
type env struct {
	t      *testing.T
	dir    string
	store  string
	spool  string
	home   string // HOME and VERNEUIL_HOME live here
	config string // VERNEUIL_CONFIG; "" leaves it unset
}

// newEnv returns an env whose configuration has a local target, a spool,
// hostname testHost, and the keys of extra (which may override those).
func newEnv(t *testing.T, extra map[string]any) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), extra)
}

// newEnvIn is newEnv in the directory dir (created if missing).
func newEnvIn(t *testing.T, dir string, extra map[string]any) *env {
	t.Helper()
	e := &env{t: t, dir: dir, store: filepath.Join(dir, "store"), spool: filepath.Join(dir, "spool"),
		home: filepath.Join(dir, "home")}
	for _, d := range []string{e.store, e.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := map[string]any{
		"spool_dir": e.spool,
		"targets":   []map[string]any{{"url": "file://" + e.store}},
		"hostname":  testHost,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "verneuil.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.config = "@" + file
	return e
}

// newBareEnv returns an env without VERNEUIL_CONFIG: the extension uses
// the embedded default, under VERNEUIL_HOME.
func newBareEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, home: filepath.Join(dir, "home")}
	if err := os.MkdirAll(e.home, 0o755); err != nil {
		t.Fatal(err)
	}
	vh := filepath.Join(e.home, "verneuil")
	e.store, e.spool = filepath.Join(vh, "store"), filepath.Join(vh, "spool")
	return e
}

// environ is the host processes' environment: the test's, without any
// verneuil or XDG variables, with HOME and VERNEUIL_HOME in the temp dir.
func (e *env) environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "VERNEUIL_") || strings.HasPrefix(k, "XDG_") || k == "HOME" {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "HOME="+e.home, "VERNEUIL_HOME="+filepath.Join(e.home, "verneuil"))
	if e.config != "" {
		out = append(out, "VERNEUIL_CONFIG="+e.config)
	}
	return out
}

// result is what a host process did.
type result struct {
	stdout, stderr string
	err            error // from Wait: nil, *exec.ExitError, ...
}

func (r result) exitCode() int {
	if r.err == nil {
		return 0
	}
	if ee, ok := r.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// crashed reports signs that the host died rather than exited: a signal, or
// a Go runtime panic or fatal error on stderr.
func (r result) crashed() bool {
	if ee, ok := r.err.(*exec.ExitError); ok && ee.ExitCode() < 0 {
		return true
	}
	for _, s := range []string{"panic:", "fatal error:", "SIGSEGV", "goroutine "} {
		if strings.Contains(r.stderr, s) {
			return true
		}
	}
	return false
}

func (r result) String() string {
	return fmt.Sprintf("exit %d (%v)\n--- stdout:\n%s--- stderr:\n%s", r.exitCode(), r.err, r.stdout, r.stderr)
}

// runHost runs a host program in e's environment with stdin.
func (e *env) runHost(stdin string, name string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), err: err}
	if r.crashed() {
		e.t.Fatalf("%s crashed:\n%s", name, r)
	}
	return r
}

// checkReplica restores the newest replica of key from the env's target and
// compares it, byte for byte, with dbPath, which must be large enough to
// show that the workload ran.
func (e *env) checkReplica(key, dbPath string) {
	t := e.t
	t.Helper()
	m := testutil.RestoreCompare(t, testutil.OpenFileStore(t, e.store), key, dbPath)
	size := fileSize(t, dbPath)
	if size < 1<<17 {
		t.Fatalf("database %s is only %d bytes: the workload did not run", dbPath, size)
	}
	t.Logf("replica of %s (%d bytes, manifest %d) is byte-identical", filepath.Base(dbPath), size, m.Seq)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// workload returns a randomised SQL script of a few hundred statements:
// inserts (blobs up to ~210 KiB, more than one 64 KiB chunk), updates,
// deletes, multi-statement transactions, a rolled-back transaction that
// spills pages to the database file (cache_size is tiny), and a VACUUM.
// The rand source is seeded from the test's seed, which is logged.
func workload(t *testing.T) string {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("VERNEUIL_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("VERNEUIL_TEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("workload seed %d (set VERNEUIL_TEST_SEED to replay)", seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	size := func() int {
		if r.IntN(6) == 0 {
			return 65536 + r.IntN(150000)
		}
		return 1 + r.IntN(3000)
	}
	rows := 0
	id := func() int { return 1 + r.IntN(max(rows, 1)) }
	w("PRAGMA cache_size=16;")
	w("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB);")
	w("CREATE INDEX t_k ON t(k);")
	w("CREATE TABLE kv(k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;")
	stmts := 300 + r.IntN(100)
	rollbackAt, vacuumAt := stmts/2, stmts*4/5
	for i := 0; i < stmts; i++ {
		switch {
		case i == rollbackAt:
			w("BEGIN;")
			w("WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x<30) INSERT INTO t(k,v) SELECT 'rb'||x, randomblob(70000) FROM s;")
			w("UPDATE t SET v=randomblob(5000) WHERE id %% 3 = 0;")
			w("DELETE FROM t WHERE id %% 5 = 1;")
			w("ROLLBACK;")
		case i == vacuumAt:
			w("VACUUM;")
		default:
			switch op := r.IntN(10); {
			case op < 4:
				rows++
				w("INSERT INTO t(k,v) VALUES('k%d', randomblob(%d));", r.IntN(1000), size())
			case op < 6:
				w("UPDATE t SET v=randomblob(%d), k=k||'u' WHERE id=%d;", size(), id())
			case op < 7:
				w("DELETE FROM t WHERE id=%d;", id())
			case op < 8:
				w("INSERT INTO kv VALUES('n%d', %d) ON CONFLICT(k) DO UPDATE SET n=n+excluded.n;", r.IntN(50), r.IntN(1000))
			case op < 9:
				w("BEGIN;")
				for range 2 + r.IntN(8) {
					rows++
					w("INSERT INTO t(k,v) VALUES('tx%d', randomblob(%d));", r.IntN(1000), size())
				}
				w("UPDATE kv SET n=n*2 WHERE k<'n2';")
				w("COMMIT;")
			default:
				lo := id()
				w("DELETE FROM t WHERE id BETWEEN %d AND %d;", lo, lo+r.IntN(4))
			}
		}
	}
	rows++
	w("INSERT INTO t(k,v) VALUES('last', randomblob(100000));")
	return b.String()
}

// writeFile writes data to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
