package testutil

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// EnvVerneuilctl, when set, names a verneuilctl binary the suites use
// instead of building one.
const EnvVerneuilctl = "VERNEUILCTL"

// The binaries this test process built, once each, under builtDir.
var (
	buildMu  sync.Mutex
	builtDir string
	built    = map[string]string{} // package → binary
)

// Build builds the main package pkg (an import path) once per test process
// and returns the binary's path. RemoveBuilt (called by Main) deletes it.
func Build(pkg string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p, nil
	}
	if builtDir == "" {
		dir, err := os.MkdirTemp("", "verneuil-test-bin-")
		if err != nil {
			return "", err
		}
		builtDir = dir
	}
	p := filepath.Join(builtDir, pkg[strings.LastIndex(pkg, "/")+1:])
	if err := buildTo(pkg, p); err != nil {
		return "", err
	}
	built[pkg] = p
	return p, nil
}

// RemoveBuilt deletes what Build built.
func RemoveBuilt() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	builtDir, built = "", map[string]string{}
}

// Verneuilctl returns the CLI under test: $VERNEUILCTL, or verneuilctl
// built from source once per test process.
func Verneuilctl(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvVerneuilctl); p != "" {
		return p
	}
	p, err := Build("github.com/verneuil-go/verneuil/cmd/verneuilctl")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Main is the TestMain of a suite whose test binary is re-executed as
// child processes: with the environment variable roleEnv set, the process
// runs role(value) and exits with its status; otherwise it runs the tests
// and removes the binaries they built. An empty roleEnv: no child roles.
func Main(m *testing.M, roleEnv string, role func(string) int) {
	if r := os.Getenv(roleEnv); roleEnv != "" && r != "" {
		os.Exit(role(r))
	}
	code := m.Run()
	RemoveBuilt()
	os.Exit(code)
}

// CtlCommand returns a command running verneuilctl with args and
// VERNEUIL_CONFIG set to configSpec (inline JSON or @file).
func CtlCommand(t testing.TB, configSpec string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Verneuilctl(t), args...)
	cmd.Env = append(os.Environ(), config.EnvConfig+"="+configSpec)
	return cmd
}

// Ctl runs verneuilctl with configSpec and returns stdout, stderr and the
// exit status; a command that cannot run fails the test.
func Ctl(t testing.TB, configSpec string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := CtlCommand(t, configSpec, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run verneuilctl: %v", err)
	}
	return out.String(), errb.String(), code
}

// MustCtl is Ctl that fails the test unless verneuilctl exits 0, and
// returns its stdout.
func MustCtl(t testing.TB, configSpec string, args ...string) string {
	t.Helper()
	out, errOut, code := Ctl(t, configSpec, args...)
	if code != 0 {
		t.Fatalf("verneuilctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// MkdirAll creates dir (and parents) and returns it.
func MkdirAll(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// LocalConfig returns a configuration replicating to the local target
// dir/store (created) with its spool in dir/spool, the given host name and
// log level "error", defaults applied.
func LocalConfig(t testing.TB, dir, hostname string) *config.Config {
	t.Helper()
	cfg := &config.Config{
		SpoolDir: filepath.Join(dir, "spool"),
		Targets:  []config.Target{{URL: config.FileURL(MkdirAll(t, filepath.Join(dir, "store")))}},
		Hostname: hostname,
		LogLevel: "error",
	}
	cfg.ApplyDefaults()
	return cfg
}

// ConfigJSON renders cfg as the JSON of VERNEUIL_CONFIG.
func ConfigJSON(t testing.TB, cfg *config.Config) string {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ReplicaKey is the store key of the replica of the database at path on
// host (no name override).
func ReplicaKey(t testing.TB, host, path string) string {
	t.Helper()
	canon, err := names.Canonical(path)
	if err != nil {
		t.Fatal(err)
	}
	return names.Key(names.Replica(host, canon))
}

// OpenFileStore opens the local target dir, closed at the end of the test.
func OpenFileStore(t testing.TB, dir string) blob.Store {
	t.Helper()
	s, err := fileblob.OpenDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// RestoreCompare restores the latest replica of key from s into a temp
// file, fails the test unless it is byte-identical to dbPath, and returns
// the manifest restored.
func RestoreCompare(t testing.TB, s blob.Store, key, dbPath string) *manifest.Manifest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := restore.Latest(ctx, s, key)
	if err != nil {
		t.Fatalf("latest replica of %s: %v", dbPath, err)
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	if err := restore.ToFile(ctx, s, m, out); err != nil {
		t.Fatalf("restore %s: %v", dbPath, err)
	}
	SameFile(t, out, dbPath)
	return m
}

// SameFile fails the test unless the files got and want hold the same
// bytes, saying where they differ.
func SameFile(t testing.TB, got, want string) {
	t.Helper()
	if g, w := FileSHA256(t, got), FileSHA256(t, want); g != w {
		t.Fatalf("%s differs from %s: sha256 %.16s vs %.16s, %s", got, want, g, w, DescribeDiff(got, want))
	}
}

// DescribeDiff says where two files differ, for failure messages.
func DescribeDiff(a, b string) string {
	x, errA := os.ReadFile(a)
	y, errB := os.ReadFile(b)
	if err := errors.Join(errA, errB); err != nil {
		return err.Error()
	}
	first, n := -1, 0
	for i := range min(len(x), len(y)) {
		if x[i] != y[i] {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	return fmt.Sprintf("lengths %d vs %d, %d bytes differ, first at %d", len(x), len(y), n, first)
}

// IntegrityCheck fails the test unless the database at path, opened
// read-only, passes SQLite's integrity_check. The test binary registers
// the "sqlite3" driver (github.com/mattn/go-sqlite3).
func IntegrityCheck(t testing.TB, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check %s: %q %v", path, res, err)
	}
}
