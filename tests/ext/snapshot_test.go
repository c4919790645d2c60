//go:build cgo

package ext

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// snapQuery summarises the workload's tables; source and replica must agree.
const snapQuery = "SELECT count(*), sum(length(v)), sum(length(k)), (SELECT sum(n) FROM kv) FROM t;"

// readerConfig switches e to a configuration for read-only hosts: the same
// target, replication off, a chunk cache in the env's directory.
func readerConfig(t *testing.T, e *env) {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"spool_dir": filepath.Join(e.dir, "reader-spool"),
		"targets":   []map[string]any{{"url": "file://" + e.store}},
		"hostname":  testHost,
		"cache_dir": filepath.Join(e.dir, "cache"),
		"replicate": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.config = "@" + writeFile(t, e.dir, "reader.json", string(b))
}

type snapStats struct {
	Version uint64 `json:"version,string"`
	Process struct {
		ChunkFetches  int64 `json:"chunk_fetches"`
		Readaheads    int64 `json:"readaheads"`
		DiskHits      int64 `json:"disk_hits"`
		ManifestLoads int64 `json:"manifest_loads"`
	} `json:"process"`
}

func parseStats(t *testing.T, line string) snapStats {
	t.Helper()
	var s snapStats
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		t.Fatalf("verneuil_snapshot_stats %q: %v", line, err)
	}
	return s
}

// The sqlite3 shell reads a replica through verneuil_snapshot, in
// processes that do not replicate: same answers as the source; a second
// process finds every chunk in the shared disk cache; writes are refused.
func TestShellSnapshot(t *testing.T) {
	sh := sqlite3Shell(t)
	e := newEnv(t, nil)
	db := filepath.Join(e.dir, "src.db")
	r := e.runHost(shellScript("file:"+db+"?vfs=verneuil", workload(t), "PRAGMA verneuil_flush;"), sh, "-bail")
	if r.exitCode() != 0 {
		t.Fatalf("writer failed:\n%s", r)
	}
	want := e.runHost(snapQuery, sh, db)
	if want.exitCode() != 0 {
		t.Fatalf("query of the source failed:\n%s", want)
	}
	readerConfig(t, e)
	uri := "file:verneuil://" + testHost + db + "?vfs=verneuil_snapshot"
	var stats []snapStats
	for i := range 2 {
		r := e.runHost(shellScript(uri, snapQuery, "PRAGMA verneuil_snapshot_stats;"), sh, "-bail")
		out := lines(r.stdout)
		if r.exitCode() != 0 || len(out) != 2 {
			t.Fatalf("reader %d failed:\n%s", i, r)
		}
		if out[0] != strings.TrimSpace(want.stdout) {
			t.Fatalf("reader %d: %q, source %q", i, out[0], want.stdout)
		}
		stats = append(stats, parseStats(t, out[1]))
	}
	if stats[0].Process.ChunkFetches == 0 {
		t.Fatalf("first reader fetched no chunk: %+v", stats[0])
	}
	// Every chunk the query needed comes from the disk cache. Readahead may
	// run further in the second process than in the first (disk hits are
	// faster than fetches, so its windows grow sooner) and fetch chunks
	// past those the first process read: those are not fetched twice.
	if s := stats[1].Process; s.ChunkFetches != s.Readaheads || s.DiskHits == 0 {
		t.Fatalf("second reader: %+v, want every chunk it needed from the disk cache (first: %+v)", s, stats[0].Process)
	}
	for _, q := range []string{"INSERT INTO kv VALUES('x', 1);", "VACUUM;", "PRAGMA journal_mode=WAL;"} {
		r := e.runHost(shellScript(uri, q), sh, "-bail")
		if r.exitCode() == 0 || !strings.Contains(r.stderr, "readonly") && !strings.Contains(r.stderr, "read only") {
			t.Errorf("%s on a replica: want a read-only error\n%s", q, r)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(e.dir, "*-journal")); len(m) > 0 {
		t.Errorf("journal files: %v", m)
	}
	r = e.runHost(shellScript("file:verneuil://nohost/x.db?vfs=verneuil_snapshot", "SELECT 1;"), sh, "-bail")
	// (The shell reports a failed .open but carries on, on :memory:.)
	if !strings.Contains(r.stderr, "unable to open database") || !strings.Contains(r.stderr, "no replica found for the replica of /x.db on host nohost") {
		t.Errorf("missing replica: want a clear error\n%s", r)
	}
}

// Python's sqlite3 module reads the replica through the extension.
func TestPythonSnapshot(t *testing.T) {
	py := python(t)
	sh := sqlite3Shell(t)
	e := newEnv(t, nil)
	db := filepath.Join(e.dir, "src.db")
	if r := e.runHost(shellScript("file:"+db+"?vfs=verneuil", workload(t), "PRAGMA verneuil_flush;"), sh, "-bail"); r.exitCode() != 0 {
		t.Fatalf("writer failed:\n%s", r)
	}
	want := e.runHost(snapQuery, sh, "-separator", ",", db)
	readerConfig(t, e)
	script := `import sqlite3, sys
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(sys.argv[1])
con = sqlite3.connect("file:" + sys.argv[2] + "?vfs=verneuil_snapshot", uri=True)
print(",".join(str(x) for x in con.execute(sys.argv[3]).fetchone()))
print(con.execute("PRAGMA verneuil_snapshot_lag").fetchone()[0])
try:
    con.execute("DELETE FROM t")
    print("write accepted")
except sqlite3.OperationalError as e:
    print("refused:", e)
`
	p := writeFile(t, e.dir, "snap.py", script)
	r := e.runHost("", py, p, soPath, db, snapQuery)
	out := lines(r.stdout)
	if r.exitCode() != 0 || len(out) != 3 {
		t.Fatalf("python failed:\n%s", r)
	}
	if out[0] != strings.TrimSpace(want.stdout) {
		t.Errorf("python reads %q, source %q", out[0], want.stdout)
	}
	if !strings.HasPrefix(out[2], "refused: attempt to write a readonly database") {
		t.Errorf("write on a replica: %q", out[2])
	}
	if _, err := os.Stat(filepath.Join(e.dir, "cache", "packs")); err != nil {
		t.Errorf("no disk cache: %v", err)
	}
}

// verneuilctl shell runs SQL on the replica through the sqlite3 shell and
// the extension, latest or pinned, and says clearly what is missing.
func TestVerneuilctlShell(t *testing.T) {
	sh := sqlite3Shell(t)
	ctl := testutil.Verneuilctl(t)
	e := newEnv(t, nil)
	db := filepath.Join(e.dir, "src.db")
	write := func(sql string) {
		t.Helper()
		if r := e.runHost(shellScript("file:"+db+"?vfs=verneuil", sql, "PRAGMA verneuil_flush;"), sh, "-bail"); r.exitCode() != 0 {
			t.Fatalf("writer failed:\n%s", r)
		}
	}
	write("CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	r := e.runHost("", ctl, "--json", "manifest", db)
	var first struct {
		Version uint64 `json:"version,string"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &first); err != nil || first.Version == 0 {
		t.Fatalf("manifest --json: %v\n%s", err, r)
	}
	write("INSERT INTO t VALUES(2);")
	readerConfig(t, e)
	// A verneuilctl with no extension beside it.
	lonelyCtl := filepath.Join(t.TempDir(), "verneuilctl")
	bin, err := os.ReadFile(ctl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lonelyCtl, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"shell", db, "--ext", soPath, "SELECT count(*) FROM t"}, "2"},
		{[]string{"shell", db, "--ext", soPath, "--version", fmt.Sprint(first.Version), "SELECT count(*) FROM t"}, "1"},
		{[]string{"shell", "--manifest", testutil.ReplicaKey(t, testHost, db), "--ext", soPath, "SELECT count(*) FROM t; PRAGMA verneuil_snapshot_refresh"}, ""},
		// The extension beside verneuilctl (where the test built both).
		{[]string{"shell", db, "SELECT count(*) FROM t"}, "2"},
	} {
		if filepath.Dir(ctl) != filepath.Dir(soPath) && len(tc.args) == 3 {
			continue // VERNEUIL_EXT gave a library elsewhere
		}
		r := e.runHost("", ctl, tc.args...)
		out := lines(r.stdout)
		if r.exitCode() != 0 || len(out) == 0 || (tc.want != "" && out[0] != tc.want) {
			t.Errorf("verneuilctl %v: want %q\n%s", tc.args, tc.want, r)
		}
	}
	for _, tc := range []struct {
		args []string
		code int // 3: no replica (README, exit codes)
		want string
	}{
		{[]string{"shell", db, "--ext", "/nonexistent/libverneuil.so", "SELECT 1"}, 1, "extension /nonexistent/libverneuil.so: not a file"},
		{[]string{"shell", db, "--ext", soPath, "--sqlite3", "/nonexistent/sqlite3", "SELECT 1"}, 1, "sqlite3 shell /nonexistent/sqlite3"},
		{[]string{"shell", db, "SELECT 1"}, 1, "no libverneuil.so found"},
		{[]string{"shell", filepath.Join(e.dir, "other.db"), "--ext", soPath, "SELECT 1"}, 3, "no replica"},
	} {
		r := e.runHost("", lonelyCtl, tc.args...)
		if r.exitCode() != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("verneuilctl %v: want exit %d and %q\n%s", tc.args, tc.code, tc.want, r)
		}
	}
}
