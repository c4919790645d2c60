//go:build cgo

package ext

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// The python-suite's replica checks must fail on a wrong replica: a
// database changed outside SQLite (no VFS sees it, so the replica keeps
// the old bytes) is found before its deletion and among the files left,
// and a file written through unix only has no replica.
func TestPySuiteChecksFindWrongReplicas(t *testing.T) {
	py := python(t)
	e := newEnv(t, map[string]any{"make_default": true})
	check := testutil.MkdirAll(t, filepath.Join(e.dir, "check"))
	files := testutil.MkdirAll(t, filepath.Join(e.dir, "files"))
	env := append(pySuiteEnv(t, e, pySuiteMode{}, e.dir), "VERNEUIL_PY_SUITE_EXT="+soPath,
		"VERNEUIL_PY_SUITE_CHECK="+check, "VERNEUIL_PY_SUITE_CTL="+testutil.Verneuilctl(t))
	script, err := filepath.Abs(filepath.Join("testdata", "pysuite_bypass.py"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, e.dir)
	cmd.Dir, cmd.Env = e.dir, env
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "done" {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}

	checks := readPyUnlinkChecks(t, filepath.Join(check, "unlink-checks.jsonl"))
	counts, keys, problems := evalPyUnlinkChecks(checks, false)
	if counts["identical"] != 1 || counts["different"] != 1 || len(keys) != 1 || len(problems) != 1 ||
		!strings.Contains(problems[0], "deleted-bad.db") || !strings.Contains(problems[0], " different ") {
		t.Fatalf("checks before deletion: counts %v, keys %v, problems %q; want deleted-bad.db different", counts, keys, problems)
	}
	// With the target said to be down, an identical replica is a problem.
	if _, _, p := evalPyUnlinkChecks(checks, true); len(p) != 2 {
		t.Fatalf("checks judged as with the target down: %q, want both reported", p)
	}

	testutil.MustCtl(t, e.config, "flush")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	same, empty, problems := comparePyFiles(t, ctx, testutil.OpenFileStore(t, e.store), files)
	slices.Sort(problems)
	if same != 1 || empty != 0 || len(problems) != 2 ||
		!strings.Contains(problems[0], "bypass.db") || !strings.Contains(problems[0], "no replica") ||
		!strings.Contains(problems[1], "patched.db") || !strings.Contains(problems[1], "differs") {
		t.Fatalf("files left: %d identical, %d empty, problems %q; want kept.db identical, bypass.db without a replica, patched.db differing",
			same, empty, problems)
	}
}

// A run whose extension fails to load (here a malformed configuration)
// ends at start-up with status 3 and says why; the harness reports that
// run as unfinished instead of comparing it.
func TestPySuiteExtensionLoadFailure(t *testing.T) {
	py := python(t)
	e := newEnv(t, nil)
	e.config = `{"make_default": true, "spool_dirr": "/nonexistent"}`
	r := &pyRun{name: "verneuil", dir: e.dir}
	r.run(py, append(pySuiteEnv(t, e, pySuiteMode{}, e.dir), "VERNEUIL_PY_SUITE_EXT="+soPath))
	var ee *exec.ExitError
	if !errors.As(r.err, &ee) || ee.ExitCode() != 3 ||
		!strings.Contains(r.output, "python-suite: loading "+soPath+" failed") || !strings.Contains(r.output, `"spool_dirr"`) {
		t.Fatalf("run with a malformed configuration: %v\n%s", r.err, r.output)
	}
	if _, err := parsePyOutcome(r.output); err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("parsePyOutcome of that run: %v, want \"did not finish\"", err)
	}
}

// An output directory that already holds a folder of a mode's name, not
// made by a run, is refused, not emptied; a run's own is replaced.
func TestPreparePyRunDir(t *testing.T) {
	out := t.TempDir()
	mine := filepath.Join(out, "files")
	precious := filepath.Join(mine, "notes.txt")
	testutil.MkdirAll(t, mine)
	if err := os.WriteFile(precious, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := preparePyRunDir(mine); err == nil || !strings.Contains(err.Error(), "VERNEUIL_PY_SUITE_OUT") {
		t.Fatalf("preparePyRunDir of a foreign directory: %v, want a refusal", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Fatalf("the foreign directory's file: %v", err)
	}
	run := filepath.Join(out, "default")
	for i := range 2 {
		if err := preparePyRunDir(run); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if err := os.WriteFile(filepath.Join(run, "suite.log"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(run); len(ents) != 2 {
		t.Fatalf("a run's directory after a second run holds %d entries, want the marker and one log", len(ents))
	}
}
