//go:build cgo

package ext

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// runPySuiteKilled is the "files-killed" mode: the suite runs in the files
// mode (with the mode's pragmas) with verneuil only, and its process group (the test runner and any
// child it started) is SIGKILLed once it has opened a random number of
// database files (of the ~460 it opens), plus 0-50 ms: in the middle of
// whatever commit, capture or upload was under way. Then, as an operator
// would after a crash:
//
//  1. `verneuilctl flush` uploads what the spool holds; every replica in
//     the target must restore to a database that passes integrity_check
//     (a replica is a committed state, never a torn one);
//  2. `verneuilctl sync` of every database file left captures what the
//     killed processes committed but had not captured (and rolls back a
//     transaction the kill left in a hot journal); then every file must be
//     byte-identical to its replica.
//
// VERNEUIL_PY_SUITE_KILL_SEED replays the choice of the kill.
func runPySuiteKilled(t *testing.T, py, ctl string, m pySuiteMode, dir string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("VERNEUIL_PY_SUITE_KILL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("VERNEUIL_PY_SUITE_KILL_SEED: %v", err)
		}
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	opened, delay := 1+rng.IntN(450), time.Duration(rng.IntN(50))*time.Millisecond
	t.Logf("kill %v after the run opened %d files (VERNEUIL_PY_SUITE_KILL_SEED=%d to replay)", delay, opened, seed)

	e := newEnvIn(t, filepath.Join(dir, "verneuil"), map[string]any{"make_default": true})
	r := &pyRun{name: "verneuil", dir: e.dir}
	files := filepath.Join(r.dir, "files")
	var due time.Time
	r.killWhen = func() bool {
		if due.IsZero() {
			if ents, _ := os.ReadDir(files); len(ents) >= opened {
				due = time.Now().Add(delay)
			}
			return false
		}
		return !time.Now().Before(due)
	}
	r.run(py, append(pySuiteEnv(t, e, m, r.dir), "VERNEUIL_PY_SUITE_EXT="+soPath,
		"VERNEUIL_PY_SUITE_CHECK="+testutil.MkdirAll(t, filepath.Join(r.dir, "check")), "VERNEUIL_PY_SUITE_CTL="+ctl))
	if !r.killed.Load() {
		t.Logf("the run ended before the kill (%v): %v", r.elapsed.Round(time.Millisecond), r.err)
	}
	checks := readPyUnlinkChecks(t, filepath.Join(r.dir, "check", "unlink-checks.jsonl"))
	counts, _, problems := evalPyUnlinkChecks(checks, false)
	t.Logf("replicas checked before the suite deleted their database: %v", counts)
	for _, p := range problems {
		// A check the kill cut short leaves no line; one that completed
		// must have been right.
		t.Error(p)
	}

	testutil.MustCtl(t, e.config, "flush")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store := openPySuiteTarget(t, ctx, e)
	listed := listPyReplicas(t, e)
	restored := filepath.Join(t.TempDir(), "restored.db")
	unchecked := 0
	for _, l := range listed {
		mf, err := restore.Latest(ctx, store, l.Key)
		if err == nil {
			err = restore.ToFile(ctx, store, mf, restored)
		}
		if err == nil {
			err = integrityCheck(restored)
		}
		var uf unknownFunctionError
		switch {
		case errors.As(err, &uf):
			unchecked++ // its schema calls a function the suite defined
		case err != nil:
			t.Errorf("replica of %s after the kill: %v", l.Name, err)
		}
	}
	t.Logf("after the kill and a flush: %d replicas, each a consistent database (%d not checkable: a function of the test in the schema)",
		len(listed), unchecked)

	var dbs []string
	ents, err := os.ReadDir(files)
	if err != nil {
		t.Fatal(err)
	}
	hot := 0
	for _, de := range ents {
		path := filepath.Join(files, de.Name())
		if strings.HasSuffix(path, ".db") && hasSQLiteMagic(path) {
			dbs = append(dbs, path)
			if hotJournal(path) {
				hot++
			}
		}
	}
	t.Logf("%d database files with a header left, %d with a hot journal", len(dbs), hot)
	for len(dbs) > 0 {
		n := min(len(dbs), 100)
		testutil.MustCtl(t, e.config, append([]string{"sync"}, dbs[:n]...)...)
		dbs = dbs[n:]
	}
	same, empty, problems := comparePyFiles(t, ctx, store, files)
	t.Logf("after verneuilctl sync: %d files byte-identical to their replica, %d never written", same, empty)
	for _, p := range problems {
		t.Error(p)
	}
}

// integrityCheck runs PRAGMA integrity_check on the database at path,
// read-only through unix.
func integrityCheck(path string) error {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&vfs=unix")
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		if strings.Contains(err.Error(), "unknown function") || strings.Contains(err.Error(), "no such function") {
			return unknownFunctionError{err}
		}
		return fmt.Errorf("integrity_check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity_check: %s", res)
	}
	return nil
}

// unknownFunctionError: integrity_check needs a function that the schema
// calls (an index on an expression, a CHECK constraint) and that only the
// program that wrote the database defines.
type unknownFunctionError struct{ err error }

func (e unknownFunctionError) Error() string { return "integrity_check: " + e.err.Error() }

// killGroup SIGKILLs the process group of cmd (started with Setpgid).
func killGroup(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
