package verneuil_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// env is one test's replication setup: a spool and a local target in a
// temp dir, and a running Replicator.
type env struct {
	t     testing.TB
	dir   string
	cfg   *config.Config
	r     *replicator.Replicator
	store string
}

// closeBound bounds the Close at the end of a test, which uploads what the
// test left staged: a hang guard, not a timing assertion. A test that ends
// right after a storm of large commits leaves a whole database to upload
// (TestRegression_FlushStarvesUnderCommitStorm: 543 changed 64 KiB chunks),
// which took more than 30 s under -race on a loaded 2-core machine.
const closeBound = 3 * time.Minute

func newEnv(t testing.TB, mutate ...func(*config.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	cfg := testutil.LocalConfig(t, dir, "testhost")
	store := cfg.Targets[0].Dir()
	cfg.ScanInterval = config.Duration(time.Hour)
	for _, f := range mutate {
		f(cfg)
	}
	r, err := replicator.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	e := &env{t: t, dir: dir, cfg: cfg, r: r, store: store}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeBound)
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
	e.t.Helper()
	return testutil.ReplicaKey(e.t, e.cfg.Hostname, path)
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
	if err := e.r.Flush(context.Background()); err != nil {
		e.t.Fatalf("flush: %v", err)
	}
	testutil.RestoreCompare(e.t, e.r.Targets()[0], e.key(path), path)
}

func mustExec(t testing.TB, db interface {
	Exec(string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
