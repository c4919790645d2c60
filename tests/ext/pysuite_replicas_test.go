//go:build cgo

package ext

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	_ "github.com/verneuil-go/verneuil/internal/blob/fileblob" // file:// targets
	_ "github.com/verneuil-go/verneuil/internal/blob/s3blob"   // s3:// targets
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// pyUnlinkCheck is one line of check/unlink-checks.jsonl, written by
// testdata/pysuite/sitecustomize.py before the suite deletes a database.
type pyUnlinkCheck struct {
	Path        string `json:"path"`
	Test        string `json:"test"`   // the test deleting it
	Result      string `json:"result"` // identical, different, skipped, restore-failed, error
	Error       string `json:"error"`
	Flush       string `json:"flush"` // PRAGMA verneuil_flush: "ok"
	Key         string `json:"key"`   // PRAGMA verneuil_manifest_name
	JournalMode string `json:"journal_mode"`
	Restored    string `json:"restored"` // kept when different
	Source      string `json:"source"`
	Stderr      string `json:"stderr"` // of a failed restore
}

// checkPySuiteReplicas checks what the verneuil run r replicated: the
// checks made before each deletion, then (after `verneuilctl flush`
// drained what the suite's processes left in the spool, once the target
// exists) the replicas in the target and, in the files modes, every
// database file left.
func checkPySuiteReplicas(t *testing.T, e *env, m pySuiteMode, r *pyRun) {
	checks := readPyUnlinkChecks(t, filepath.Join(r.dir, "check", "unlink-checks.jsonl"))
	counts, keys, problems := evalPyUnlinkChecks(checks, m.targetDown)
	t.Logf("replicas checked before the suite deleted their database: %v (%d databases)", counts, len(keys))
	for _, p := range problems {
		t.Error(p)
	}
	if len(checks) == 0 {
		t.Errorf("no replica was checked before a deletion: the suite deletes databases it wrote (%s)", r.log)
	}

	if m.targetDown {
		testutil.MkdirAll(t, e.store)
	}
	testutil.MustCtl(t, e.config, "flush")
	listed := listPyReplicas(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store := openPySuiteTarget(t, ctx, e)
	versions := 0
	for _, l := range listed {
		v, err := restore.Versions(ctx, store, l.Key)
		if err != nil {
			t.Errorf("versions of %s: %v", l.Key, err)
		}
		versions += len(v)
		delete(keys, l.Key)
	}
	for k := range keys {
		t.Errorf("verneuilctl list does not list %s, checked during the run", k)
	}
	t.Logf("target: %d replicas, %d versions in their histories", len(listed), versions)
	if len(listed) == 0 {
		t.Errorf("the target holds no replica after the run")
	}
	if m.files {
		same, empty, problems := comparePyFiles(t, ctx, store, filepath.Join(r.dir, "files"))
		t.Logf("database files left by the suite: %d byte-identical to their replica, %d never written (no replica)", same, empty)
		for _, p := range problems {
			t.Error(p)
		}
		if same == 0 {
			t.Errorf("no database file was compared: the files mode wrote nothing")
		}
	}
}

// pyReplica is an entry of `verneuilctl list --json`.
type pyReplica struct{ Key, Name string }

func listPyReplicas(t *testing.T, e *env) []pyReplica {
	t.Helper()
	var listed []pyReplica
	if err := json.Unmarshal([]byte(testutil.MustCtl(t, e.config, "list", "--json")), &listed); err != nil {
		t.Fatalf("verneuilctl list --json: %v", err)
	}
	return listed
}

// openPySuiteTarget opens the first target of e's configuration, closed at
// the end of the test.
func openPySuiteTarget(t *testing.T, ctx context.Context, e *env) blob.Store {
	t.Helper()
	cfg, err := config.Load(e.config)
	if err != nil {
		t.Fatal(err)
	}
	tg := cfg.Targets[0]
	s, err := blob.Open(ctx, tg.URL, blob.Options{Endpoint: tg.Endpoint, Region: tg.Region, PathStyle: tg.PathStyle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// evalPyUnlinkChecks counts the checks by result and returns the replica
// keys checked and the problems: a replica that differed, failed to
// restore, or a check that failed. With the target down, each check's
// flush must fail instead, naming the target.
func evalPyUnlinkChecks(checks []pyUnlinkCheck, targetDown bool) (counts map[string]int, keys map[string]bool, problems []string) {
	counts, keys = map[string]int{}, map[string]bool{}
	for _, c := range checks {
		counts[c.Result]++
		what := fmt.Sprintf("replica of %s (deleted by %s), checked before the deletion:", c.Path, c.Test)
		switch {
		case c.Result == "skipped":
		case targetDown:
			if c.Result != "error" || !strings.Contains(c.Error, "verneuil_flush") || !strings.Contains(c.Error, "target") {
				problems = append(problems, fmt.Sprintf("%s %s %s: with the target missing, PRAGMA verneuil_flush must fail naming it",
					what, c.Result, c.Error))
			}
		case c.Result != "identical" || c.Flush != "ok" || c.Key == "":
			problems = append(problems, fmt.Sprintf("%s %s %s (flush %q, key %q) %s %s%s", what, c.Result, c.Error,
				c.Flush, c.Key, c.Restored, c.Source, c.Stderr))
		default:
			keys[c.Key] = true
		}
	}
	return counts, keys, problems
}

func readPyUnlinkChecks(t *testing.T, path string) []pyUnlinkCheck {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []pyUnlinkCheck
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c pyUnlinkCheck
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s: %v: %q", path, err, sc.Text())
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// comparePyFiles compares every database file *.db in dir (the files the
// "files" modes opened for :memory:) with its latest replica in s, byte
// for byte, against the file's committed state (committedState). A file
// that was never written (no SQLite header) may have no replica (counted
// in empty).
func comparePyFiles(t *testing.T, ctx context.Context, s blob.Store, dir string) (same, empty int, problems []string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	for _, de := range ents {
		name := de.Name()
		if !de.Type().IsRegular() || !strings.HasSuffix(name, ".db") {
			continue
		}
		path := filepath.Join(dir, name)
		key := testutil.ReplicaKey(t, testHost, path)
		if !hasSQLiteMagic(path) {
			// Opened and never written: no commit, so no replica, or the
			// replica of an empty file (a write transaction that wrote
			// no page), which must then be empty too.
			if _, err := restore.Latest(ctx, s, key); errors.Is(err, blob.ErrNotFound) {
				empty++
				continue
			}
		}
		ref := committedState(t, path)
		mf, err := restore.Latest(ctx, s, key)
		if err == nil {
			err = restore.ToFile(ctx, s, mf, restored)
		}
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", path, err))
		case !sameBytes(t, restored, ref):
			problems = append(problems, fmt.Sprintf("%s: the replica differs: %s", path, testutil.DescribeDiff(restored, ref)))
		default:
			same++
		}
	}
	return same, empty, problems
}

func hasSQLiteMagic(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 16)
	n, _ := f.Read(b)
	return string(b[:n]) == "SQLite format 3\x00"
}

func sameBytes(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// committedState returns a copy of the database at path in the state its
// last commit left, which its replica must hold byte for byte (no process
// may be using it): the file, its -wal and its -journal are copied to a
// scratch directory and the copy is opened through unix, which rolls back
// a hot journal (a transaction a killed process left) and recovers the
// WAL; then a TRUNCATE checkpoint writes the WAL's committed frames into
// the file (docs/ARCHITECTURE.md, the byte-exactness invariant of WAL
// mode).
func committedState(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "ref.db")
	for _, sfx := range []string{"", "-wal", "-journal"} {
		data, err := os.ReadFile(path + sfx)
		if errors.Is(err, os.ErrNotExist) && sfx != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+sfx, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite3", "file:"+dst+"?vfs=unix")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, busy, logFrames, ckpt int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		t.Fatalf("read the copy of %s: %v", path, err)
	}
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &ckpt); err != nil || busy != 0 {
		t.Fatalf("checkpoint the copy of %s: busy=%d %v", path, busy, err)
	}
	return dst
}

// hotJournal reports whether path has a -journal that SQLite would roll
// back: one that starts with the journal header's magic number.
func hotJournal(path string) bool {
	f, err := os.Open(path + "-journal")
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 8)
	n, _ := f.Read(b)
	return n == 8 && string(b) == "\xd9\xd5\x05\xf9\x20\xa1\x63\xd7"
}
