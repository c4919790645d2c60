package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// harnessCheckTest is a test file run next to the harness in
// TestHarnessKeepsAndReports: through the default VFS it writes a
// database that it then removes, one in a directory it creates, and one
// that it removes and creates again under the same name.
const harnessCheckTest = `package sqlite3_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

func write(t *testing.T, path, value string) {
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"CREATE TABLE IF NOT EXISTS t(v)", "INSERT INTO t VALUES ('" + value + "')"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// kept waits until the harness has linked the file at rel, so that the
// test does not depend on how fast the watcher's thread runs.
func kept(t *testing.T, rel string) {
	dir, keep := os.Getenv("TMPDIR"), os.Getenv("VERNEUIL_MATTN_KEEP")
	for i := 0; i < 6000; i++ {
		a, errA := os.Stat(filepath.Join(dir, rel))
		b, errB := os.Stat(filepath.Join(keep, rel))
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s was not kept within 30 s", rel)
}

func TestWritesAndRemoves(t *testing.T) {
	dir := os.Getenv("TMPDIR")
	write(t, filepath.Join(dir, "removed.db"), "first")
	kept(t, "removed.db")
	os.Remove(filepath.Join(dir, "removed.db"))

	if err := os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "sub", "deeper", "nested.db"), "nested")
	kept(t, "sub/deeper/nested.db")
	os.RemoveAll(filepath.Join(dir, "sub"))

	again := filepath.Join(dir, "again.db")
	write(t, again, "old")
	kept(t, "again.db")
	os.Remove(again)
	write(t, again, "new")
	kept(t, "again.db")
	os.Remove(again)
}
`

// TestHarnessKeepsAndReports runs the harness (testdata) in verneuil mode
// around a small test of its own, in a module that uses the driver from
// the module cache (already built for the repository's own tests), and
// checks its report, its kept files and that verneuil was the default VFS.
func TestHarnessKeepsAndReports(t *testing.T) {
	root, err := moduleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(dir, "mod")
	gosum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	_, version, err := locateDriver(envOr("GO", "go"), root)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, mod, map[string]string{
		"go.mod":         "module example.com/harnesscheck\n\ngo 1.21\n\nrequire " + driverModule + " " + version + "\n",
		"go.sum":         string(gosum),
		harnessName:      string(harnessSource),
		"check_test.go":  harnessCheckTest,
		"../go.work":     goWork(goDirective(mustRead(t, filepath.Join(root, "go.mod"))), mod, root),
		"../tmp/.exists": "",
	})
	tmp, keep, report := filepath.Join(dir, "tmp"), filepath.Join(dir, "keep"), filepath.Join(dir, "report.json")
	store := filepath.Join(dir, "store")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(map[string]any{
		"spool_dir": filepath.Join(dir, "spool"), "make_default": true, "hostname": "harness-check",
		"targets": []map[string]string{{"url": config.FileURL(store)}}, "log_level": "error",
	})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "harnesscheck.test")
	if _, err := goCmd(envOr("GO", "go"), mod, []string{"GOWORK=" + filepath.Join(dir, "go.work"),
		"GOFLAGS=" + workspaceGoflags(os.Getenv("GOFLAGS"))}, "test", "-c", "-o", bin, "."); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.v")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "VERNEUIL_MATTN_MODE=verneuil", "VERNEUIL_MATTN_KEEP="+keep,
		"VERNEUIL_MATTN_REPORT="+report, "VERNEUIL_CONFIG="+string(cfg), "VERNEUIL_HOME="+filepath.Join(dir, "home"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the harness's test binary: %v\n%s", err, out)
	}

	var rep harnessReport
	if err := json.Unmarshal(mustRead(t, report), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Mode != "verneuil" || rep.Probe != "ok" || rep.ProbeError != "" || rep.FlushError != "" ||
		rep.CloseError != "" || len(rep.WatchError) != 0 || rep.ExitCode != 0 {
		t.Fatalf("report = %+v", rep)
	}
	if !strings.HasPrefix(rep.ProbePath, tmp+"/") {
		t.Errorf("probe %s not under TMPDIR %s", rep.ProbePath, tmp)
	}
	if _, err := os.Stat(filepath.Join(keep, filepath.Base(filepath.Dir(rep.ProbePath)))); err == nil {
		t.Errorf("the probe, there before the suite, was kept")
	}
	// removed.db, sub/deeper/nested.db and again.db (twice: the second
	// replaces the first link); no journal.
	if rep.Kept < 3 {
		t.Errorf("kept %d files, want at least 3", rep.Kept)
	}
	for _, rel := range []string{"removed.db", "sub/deeper/nested.db", "again.db"} {
		if !isRegular(filepath.Join(keep, rel)) {
			t.Errorf("%s was not kept", rel)
		}
	}
	if data := mustRead(t, filepath.Join(keep, "again.db")); !strings.Contains(string(data), "new") || strings.Contains(string(data), "old") {
		t.Errorf("again.db: the kept link is not the newer file")
	}
	checks, err := checkReplicas(t.Context(), replicaLayout{Store: testutil.OpenFileStore(t, store), Host: "harness-check", Tmp: tmp, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	equal := 0
	for _, c := range checks {
		if c.Status != replicaEqual {
			t.Errorf("replica %s: %s %s", c.Name, c.Status, c.Detail)
			continue
		}
		equal++
	}
	if equal != 4 { // the probe and the three databases
		t.Errorf("%d replicas identical, want 4: %+v", equal, checks)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
