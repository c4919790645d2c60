//go:build cgo

// Package s3 tests replication to a real S3-compatible server (versitygw,
// started per test by internal/blob/s3test): writes through the VFS and
// byte-identical restores, hundreds of databases in one process, a fault
// injecting proxy (5xx answers, slow answers, connection resets, an
// outage), misconfigured targets, and the verneuilctl copier daemon.
//
// Child processes are this test binary re-executed in a role
// (VERNEUIL_S3_ROLE); verneuilctl is built from source once.
package s3

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m, "VERNEUIL_S3_ROLE", runRole) }

// s3Config returns a configuration replicating to endpoint/bucket/prefix
// with its spool under dir.
func s3Config(dir, endpoint, bucket, prefix string) *config.Config {
	cfg := &config.Config{
		SpoolDir: filepath.Join(dir, "spool"),
		Targets: []config.Target{{URL: "s3://" + bucket + "/" + prefix, Endpoint: endpoint,
			Region: "us-east-1", PathStyle: true}},
		Hostname: "s3host",
		LogLevel: "warn",
	}
	cfg.ApplyDefaults()
	return cfg
}

// startReplicator starts replication for the test and closes it at the end.
func startReplicator(t *testing.T, cfg *config.Config) *replicator.Replicator {
	t.Helper()
	r, err := replicator.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// openDB opens path through the replicating VFS with one connection.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&_journal_mode=DELETE&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func exec1(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// openStore opens the first target of cfg for reading replicas back.
func openStore(t testing.TB, cfg *config.Config) blob.Store {
	t.Helper()
	stores, err := replicator.OpenTargets(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range stores {
			s.Close()
		}
	})
	return stores[0]
}

// restoreCompare restores the latest replica of path from s and checks
// that it is byte-identical to the file.
func restoreCompare(t testing.TB, cfg *config.Config, s blob.Store, path string) {
	t.Helper()
	_, key, err := replicator.ReplicaName(cfg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	testutil.RestoreCompare(t, s, key, path)
}

// spoolOf returns the spool directory of the database at path.
func spoolOf(t testing.TB, cfg *config.Config, path string) *spool.Dir {
	t.Helper()
	_, key, err := replicator.ReplicaName(cfg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := spool.Existing(cfg.SpoolDir, key)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// child returns a command running this binary in role with cfg.
func child(t testing.TB, role string, cfg *config.Config, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VERNEUIL_S3_ROLE="+role, "VERNEUIL_CONFIG="+testutil.ConfigJSON(t, cfg))
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// ctl runs verneuilctl with cfg and returns stdout, stderr and the exit
// status.
func ctl(t testing.TB, cfg *config.Config, args ...string) (string, string, int) {
	t.Helper()
	return testutil.Ctl(t, testutil.ConfigJSON(t, cfg), args...)
}

// statusRow is the part of `verneuilctl status --json` the tests read.
type statusRow struct {
	Path       string  `json:"path"`
	Pending    bool    `json:"pending"`
	LagSeconds float64 `json:"lag_seconds"`
	SpoolBytes int64   `json:"spool_bytes"`
	LastError  *struct {
		Message   string `json:"message"`
		Failures  int    `json:"failures"`
		Permanent bool   `json:"permanent"`
	} `json:"last_error"`
	Error string `json:"error"`
}

func status(t testing.TB, cfg *config.Config) []statusRow {
	t.Helper()
	out, errOut, code := ctl(t, cfg, "status", "--json")
	if code != 0 {
		t.Fatalf("verneuilctl status: exit %d: %s", code, errOut)
	}
	var rows []statusRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return rows
}

// runRole is the body of a child process. Roles:
//
//	writer: commit VERNEUIL_S3_N transactions to VERNEUIL_S3_DB (every
//	        one must succeed and take less than a second), try to flush
//	        (printing "flush: ok" or "flush error: REASON"), let the
//	        background copier run for VERNEUIL_S3_LINGER, then exit
//	        without waiting for uploads.
func runRole(role string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "role %s: %s\n", role, fmt.Sprintf(format, args...))
		return 3
	}
	if role != "writer" {
		return fail("unknown role")
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return fail("%v", err)
	}
	ctx := context.Background()
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		return fail("start: %v", err)
	}
	path := os.Getenv("VERNEUIL_S3_DB")
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&_journal_mode=DELETE")
	if err != nil {
		return fail("%v", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		return fail("create: %v", err)
	}
	n, _ := strconv.Atoi(os.Getenv("VERNEUIL_S3_N"))
	for i := range n {
		start := time.Now()
		if _, err := db.Exec("INSERT INTO t(v) VALUES(randomblob(?))", 100+i*37%5000); err != nil {
			return fail("write %d failed: %v", i, err)
		}
		if d := time.Since(start); d > time.Second {
			return fail("write %d took %v", i, d)
		}
	}
	if err := r.Flush(ctx); err != nil {
		fmt.Printf("flush error: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	} else {
		fmt.Println("flush: ok")
	}
	linger, _ := time.ParseDuration(os.Getenv("VERNEUIL_S3_LINGER"))
	time.Sleep(linger)
	if err := db.Close(); err != nil {
		return fail("close db: %v", err)
	}
	// Leave what is not uploaded in the spool, as a process that exits
	// without waiting does.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = r.Close(cctx)
	return 0
}
