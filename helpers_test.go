package verneuil_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// env is one test's replication setup: a spool and a local target in a
// temp dir, and a running Replicator.
type env struct {
	t     testing.TB
	dir   string
	cfg   *config.Config
	r     *verneuil.Replicator
	store string
}

func newEnv(t testing.TB, mutate ...func(*config.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		SpoolDir: filepath.Join(dir, "spool"),
		Targets:  []config.Target{{URL: config.FileURL(store)}},
		LogLevel: "error",
		Hostname: "testhost",
	}
	cfg.ApplyDefaults()
	cfg.ScanInterval = config.Duration(time.Hour)
	for _, f := range mutate {
		f(cfg)
	}
	r, err := verneuil.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	e := &env{t: t, dir: dir, cfg: cfg, r: r, store: store}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// open opens path through the replicating VFS with extra URI parameters.
func (e *env) open(path, params string) *sql.DB {
	e.t.Helper()
	dsn := "file:" + path + "?vfs=verneuil"
	if params != "" {
		dsn += "&" + params
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

func (e *env) key(path string) string {
	canon, err := names.Canonical(path)
	if err != nil {
		e.t.Fatal(err)
	}
	return names.Key(names.Replica(e.cfg.Hostname, canon))
}

func (e *env) latest(path string) *manifest.Manifest {
	e.t.Helper()
	m, err := restore.Latest(context.Background(), e.r.Targets()[0], e.key(path))
	if err != nil {
		e.t.Fatalf("latest manifest: %v", err)
	}
	return m
}

// checkReplica flushes and asserts that the restored replica is
// byte-identical to the database file.
func (e *env) checkReplica(path string) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.r.Flush(ctx); err != nil {
		e.t.Fatalf("flush: %v", err)
	}
	out := filepath.Join(e.dir, "restored.db")
	if err := restore.ToFile(ctx, e.r.Targets()[0], e.latest(path), out); err != nil {
		e.t.Fatalf("restore: %v", err)
	}
	if got, want := testutil.FileSHA256(e.t, out), testutil.FileSHA256(e.t, path); got != want {
		e.t.Fatalf("replica hash %s, database hash %s (%s)", got, want, describeDiff(out, path))
	}
}

func mustExec(t testing.TB, db interface {
	Exec(string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// describeDiff says where two files differ, for failure messages.
func describeDiff(a, b string) string {
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	first, n := -1, 0
	for i := 0; i < min(len(x), len(y)); i++ {
		if x[i] != y[i] {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	return fmt.Sprintf("lengths %d vs %d, %d bytes differ, first at %d", len(x), len(y), n, first)
}
