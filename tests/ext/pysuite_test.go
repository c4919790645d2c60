//go:build cgo

package ext

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver of committedState and integrityCheck

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// pySuitePython is the interpreter whose own sqlite3 tests are run: Debian's
// (extension loading enabled, SQLite 3.40 from libsqlite3), never a python3
// earlier on PATH.
const pySuitePython = "/usr/bin/python3"

// pySuiteMode is one way of running the suite; both runs of a mode (plain
// and verneuil) run it the same way.
type pySuiteMode struct {
	name    string
	files   bool   // sqlite3.connect(":memory:") opens a new file instead
	pragmas string // run on every new connection to a file ("P1;P2"), e.g. "journal_mode=wal"
	// targetDown: the verneuil run's target directory does not exist
	// while the suite runs (writes are spooled, flushes fail); it is
	// created afterwards, and `verneuilctl flush` must then replicate
	// everything.
	targetDown bool
	// s3: the verneuil run replicates to a real S3 server (versitygw on
	// the loopback interface, internal/blob/s3test) instead of a local
	// directory.
	s3 bool
	// kill: the verneuil run alone, SIGKILLed at a random moment
	// (runPySuiteKilled).
	kill bool
}

var pySuiteModes = []pySuiteMode{
	{name: "default"},
	{name: "wal", pragmas: "journal_mode=wal"},
	{name: "files", files: true},
	{name: "files-wal", files: true, pragmas: "journal_mode=wal"},
	{name: "files-target-down", files: true, targetDown: true},
	// The wal-index in heap memory (exclusive locking when the WAL opens).
	{name: "files-exclusive-wal", files: true, pragmas: "locking_mode=exclusive;journal_mode=wal"},
	// Small pages and a one-page cache: transactions spill pages to the
	// file before they commit (or roll back).
	{name: "files-spill", files: true, pragmas: "page_size=512;cache_size=1"},
	{name: "files-s3", files: true, s3: true},
	// Killed at a random moment; spilling transactions leave uncommitted
	// pages in the file beside a hot journal when the kill lands in one.
	{name: "files-killed", files: true, kill: true, pragmas: "page_size=512;cache_size=1"},
}

// pySuiteDefaultModes are the modes a plain `go test` runs (make test);
// VERNEUIL_PY_SUITE_MODES="all" or a list of names runs others
// (make python-suite runs all).
var pySuiteDefaultModes = []string{"default", "wal", "files"}

// TestPythonSQLiteSuite runs CPython's own sqlite3 tests
// (`/usr/bin/python3 -m test test_sqlite3 -v`, installed by
// scripts/install-python-suite.sh) twice per mode, at the same time: plain,
// and with libverneuil.so loaded before the suite starts and
// "make_default": true, so that every connection the suite opens (also in
// the child processes it starts) uses the replicating VFS, replicating to a
// local target. The two runs must fail the same tests (and run and skip as
// many); then the replicas are checked: every database the suite deletes
// was restored with `verneuilctl restore` just before and compared byte for
// byte (testdata/pysuite/sitecustomize.py), and in the "files" modes every
// database file left at the end is compared with its restored replica.
// docs/TESTING.md describes it; VERNEUIL_PY_SUITE_OUT=DIR keeps the logs,
// the spool and the store there.
func TestPythonSQLiteSuite(t *testing.T) {
	py := pySuiteInterpreter(t)
	modes := pySuiteSelected(t)
	out := os.Getenv("VERNEUIL_PY_SUITE_OUT")
	if out == "" {
		out = t.TempDir()
	} else {
		var err error
		if out, err = filepath.Abs(out); err != nil {
			t.Fatal(err)
		}
	}
	ctl := testutil.Verneuilctl(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := filepath.Join(out, m.name)
			if err := preparePyRunDir(dir); err != nil {
				t.Fatal(err)
			}
			if m.kill {
				runPySuiteKilled(t, py, ctl, m, dir)
				return
			}
			runPySuiteMode(t, py, ctl, m, dir)
		})
	}
}

// pyRunMarker marks a directory as a mode's run directory, which the next
// run may remove.
const pyRunMarker = ".python-suite-run"

// preparePyRunDir empties dir for a run: it removes a previous run's
// directory (one holding pyRunMarker) and refuses any other existing
// directory, so that a VERNEUIL_PY_SUITE_OUT pointing at the wrong place
// (a home directory with a "files" folder) loses nothing.
func preparePyRunDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		if _, err := os.Stat(filepath.Join(dir, pyRunMarker)); err != nil {
			return fmt.Errorf("%s exists and is not a directory of an earlier run (no %s): set VERNEUIL_PY_SUITE_OUT to another directory",
				dir, pyRunMarker)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, pyRunMarker), nil, 0o644)
}

// pySuiteInterpreter returns /usr/bin/python3 when it can run the suite
// and load extensions; otherwise the test is skipped (failed with CI=true).
func pySuiteInterpreter(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(pySuitePython, "-c",
		"import sqlite3, test.test_sqlite3; sqlite3.connect(':memory:').enable_load_extension").CombinedOutput()
	need(t, err == nil, "%s cannot run test.test_sqlite3 with extension loading (scripts/install-python-suite.sh): %v %s",
		pySuitePython, err, strings.TrimSpace(string(out)))
	return pySuitePython
}

// pySuiteSelected returns the modes VERNEUIL_PY_SUITE_MODES names ("all",
// or names separated by spaces or commas), else pySuiteDefaultModes.
func pySuiteSelected(t *testing.T) []pySuiteMode {
	t.Helper()
	names := pySuiteDefaultModes
	if v := strings.TrimSpace(os.Getenv("VERNEUIL_PY_SUITE_MODES")); v == "all" {
		names = pySuiteModeNames()
	} else if v != "" {
		names = strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	}
	var modes []pySuiteMode
	for _, n := range names {
		i := slices.IndexFunc(pySuiteModes, func(m pySuiteMode) bool { return m.name == n })
		if i < 0 {
			t.Fatalf("VERNEUIL_PY_SUITE_MODES: unknown mode %q (all, or one of %v)", n, pySuiteModeNames())
		}
		modes = append(modes, pySuiteModes[i])
	}
	return modes
}

func pySuiteModeNames() []string {
	var names []string
	for _, m := range pySuiteModes {
		names = append(names, m.name)
	}
	return names
}

// pyRun is one run of the suite.
type pyRun struct {
	name    string // "plain" or "verneuil"
	dir     string // its directory: TMPDIR tmp/, files/, check/, the log
	log     string // its output, stdout and stderr interleaved
	output  string
	err     error // from Wait
	elapsed time.Duration

	// killWhen, when set, is polled every 5 ms while the run goes on:
	// once it returns true the run's process group is SIGKILLed.
	killWhen func() bool
	killed   atomic.Bool // it was
}

func runPySuiteMode(t *testing.T, py, ctl string, m pySuiteMode, dir string) {
	cfg := map[string]any{"make_default": true}
	if m.s3 {
		endpoint, bucket := s3test.Start(t) // AWS_* credentials in the environment
		cfg["targets"] = []map[string]any{{"url": "s3://" + bucket + "/pysuite", "endpoint": endpoint,
			"region": s3test.Region, "path_style": true}}
	}
	e := newEnvIn(t, filepath.Join(dir, "verneuil"), cfg)
	if m.targetDown {
		if err := os.Remove(e.store); err != nil {
			t.Fatal(err)
		}
	}
	runs := []*pyRun{
		{name: "plain", dir: filepath.Join(dir, "plain")},
		{name: "verneuil", dir: e.dir},
	}
	var wg sync.WaitGroup
	for _, r := range runs {
		env := pySuiteEnv(t, e, m, r.dir)
		if r.name == "verneuil" {
			env = append(env, "VERNEUIL_PY_SUITE_EXT="+soPath,
				"VERNEUIL_PY_SUITE_CHECK="+testutil.MkdirAll(t, filepath.Join(r.dir, "check")),
				"VERNEUIL_PY_SUITE_CTL="+ctl)
		}
		wg.Go(func() { r.run(py, env) })
	}
	wg.Wait()

	outcomes := map[string]pyOutcome{}
	for _, r := range runs {
		o, err := parsePyOutcome(r.output)
		if err != nil || r.err != nil && o.result == "" {
			t.Fatalf("%s run (%s, %v): %v, %v; the end of its output:\n%s", r.name, r.log, r.elapsed.Round(time.Millisecond),
				r.err, err, tail(r.output, 40))
		}
		outcomes[r.name] = o
		t.Logf("%s: %d tests, %d failed, %d skipped, regrtest %s, %v (%s)", r.name, o.ran, len(o.failures),
			o.skipped, o.result, r.elapsed.Round(time.Millisecond), r.log)
	}
	for _, f := range outcomes["plain"].failures {
		t.Logf("fails in both runs: %s", f)
	}
	for msg, n := range verneuilLogSummary(runs[1].output) {
		t.Logf("verneuil logged %d× %s", n, msg)
	}
	if d := comparePyOutcomes(outcomes["plain"], outcomes["verneuil"]); len(d) > 0 {
		for _, line := range d {
			for _, r := range runs {
				if f, ok := strings.CutPrefix(line, "fails with "+r.name+" only: "); ok {
					line += "\n" + pyFailureBlock(r.output, f)
				}
			}
			t.Error(line)
		}
		t.Errorf("the plain and verneuil runs differ (logs: %s, %s)", runs[0].log, runs[1].log)
	}
	checkPySuiteReplicas(t, e, m, runs[1])
}

// pySuiteEnv is the environment of a run in dir: e's (HOME, VERNEUIL_HOME,
// VERNEUIL_CONFIG in the verneuil run's directory; unused without the
// extension), without PYTHON* variables, with the sitecustomize and the
// mode's variables.
func pySuiteEnv(t *testing.T, e *env, m pySuiteMode, dir string) []string {
	t.Helper()
	site, err := filepath.Abs(filepath.Join("testdata", "pysuite"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range e.environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "PYTHON") && k != "TMPDIR" {
			out = append(out, kv)
		}
	}
	// No __pycache__ in testdata/pysuite; the standard library's are there.
	out = append(out, "PYTHONPATH="+site, "PYTHONDONTWRITEBYTECODE=1",
		"TMPDIR="+testutil.MkdirAll(t, filepath.Join(dir, "tmp")))
	if m.files {
		out = append(out, "VERNEUIL_PY_SUITE_FILES="+testutil.MkdirAll(t, filepath.Join(dir, "files")))
	}
	pragmas := m.pragmas
	if v, ok := os.LookupEnv("VERNEUIL_PY_SUITE_PRAGMAS"); ok {
		pragmas = v
	}
	if pragmas != "" {
		out = append(out, "VERNEUIL_PY_SUITE_PRAGMAS="+pragmas)
	}
	return out
}

func (r *pyRun) run(py string, env []string) {
	r.log = filepath.Join(r.dir, "suite.log")
	f, err := os.Create(r.log)
	if err != nil {
		r.err = err
		return
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-m", "test", "test_sqlite3", "-v")
	cmd.Dir, cmd.Env = r.dir, env
	// Its own process group, so that a timeout or a kill ends the child
	// processes the suite starts too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	var buf bytes.Buffer
	w := &lockedWriter{w: f, buf: &buf}
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	if r.err = cmd.Start(); r.err != nil {
		return
	}
	if r.killWhen != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					if r.killWhen() {
						r.killed.Store(true)
						killGroup(cmd)
						return
					}
				}
			}
		}()
	}
	r.err = cmd.Wait()
	r.elapsed = time.Since(start)
	r.output = buf.String()
}

// lockedWriter writes the run's output to its log file and keeps a copy.
type lockedWriter struct {
	mu  sync.Mutex
	w   *os.File
	buf *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	return l.w.Write(p)
}

var verneuilLogRE = regexp.MustCompile(`level=(WARN|ERROR) msg="((?:[^"\\]|\\.)*)"`)

// verneuilLogSummary counts the library's warnings and errors (log/slog's
// text lines on the host's stderr) by level and message.
func verneuilLogSummary(out string) map[string]int {
	n := map[string]int{}
	for _, m := range verneuilLogRE.FindAllStringSubmatch(out, -1) {
		n[m[1]+" "+m[2]]++
	}
	return n
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
