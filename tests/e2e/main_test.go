//go:build cgo

// Package e2e runs verneuil end to end: real writer processes (this test
// binary re-executed in a writer role), verneuilctl built from source, kills,
// bypassing writers and damaged replicas.
package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m, "VERNEUIL_E2E_ROLE", runRole) }

// setup is a spool and a local target in a temp dir, as VERNEUIL_CONFIG.
type setup struct {
	t      *testing.T
	dir    string
	store  string
	config string
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	dir := t.TempDir()
	cfg := testutil.LocalConfig(t, dir, "e2ehost")
	return &setup{t: t, dir: dir, store: cfg.Targets[0].Dir(), config: testutil.ConfigJSON(t, cfg)}
}

// ctl runs verneuilctl and returns stdout, stderr and the exit code.
func (s *setup) ctl(args ...string) (string, string, int) {
	s.t.Helper()
	return testutil.Ctl(s.t, s.config, args...)
}

func (s *setup) mustCtl(args ...string) string {
	s.t.Helper()
	return testutil.MustCtl(s.t, s.config, args...)
}

// writer starts this binary in the writer role on db.
func (s *setup) writer(role, db string, extra ...string) *exec.Cmd {
	s.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VERNEUIL_E2E_ROLE="+role, "VERNEUIL_E2E_DB="+db,
		"VERNEUIL_CONFIG="+s.config)
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stderr = os.Stderr
	return cmd
}

// syncRestoreCompare syncs db, restores it and checks byte identity.
func (s *setup) syncRestoreCompare(db string) {
	s.t.Helper()
	s.mustCtl("sync", db)
	out := filepath.Join(s.dir, "restored.db")
	s.mustCtl("restore", db, "--out", out, "--force")
	testutil.SameFile(s.t, out, db)
	testutil.IntegrityCheck(s.t, out)
}

// runRole is the body of a child process.
func runRole(role string) int {
	path := os.Getenv("VERNEUIL_E2E_DB")
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	params := os.Getenv("VERNEUIL_E2E_PARAMS")
	if params == "" {
		params = "_journal_mode=DELETE"
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&_busy_timeout=20000&"+params)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db.SetMaxOpenConns(1)
	seed, _ := strconv.ParseUint(os.Getenv("VERNEUIL_E2E_SEED"), 10, 64)
	rng := rand.New(rand.NewPCG(seed, uint64(os.Getpid())))
	must := func(q string, args ...any) {
		if _, err := db.Exec(q, args...); err != nil {
			fmt.Fprintf(os.Stderr, "writer: %s: %v\n", q, err)
			os.Exit(3)
		}
	}
	must("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
	switch role {
	case "loop": // commit until killed
		for {
			switch rng.IntN(10) {
			case 0:
				must("DELETE FROM t WHERE k % 13 = ?", rng.IntN(13))
			case 1:
				must("UPDATE t SET v = randomblob(?) WHERE k % 7 = ?", rng.IntN(3000), rng.IntN(7))
			case 2:
				tx, _ := db.Begin()
				for range rng.IntN(40) {
					tx.Exec("INSERT INTO t(k, v) VALUES(?, randomblob(?))", rng.IntN(1000), rng.IntN(30000))
				}
				tx.Rollback()
			default:
				tx, err := db.Begin()
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 3
				}
				for range rng.IntN(30) + 1 {
					if _, err := tx.Exec("INSERT INTO t(k, v) VALUES(?, randomblob(?))", rng.IntN(1000), rng.IntN(20000)); err != nil {
						fmt.Fprintln(os.Stderr, err)
						return 3
					}
				}
				if err := tx.Commit(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 3
				}
			}
		}
	case "churn": // rewrite rows of a bounded table until killed (about 1 MB)
		for {
			must("INSERT OR REPLACE INTO t(id, k, v) VALUES(?, ?, randomblob(?))", rng.IntN(500), rng.IntN(1000), rng.IntN(4000))
		}
	case "count": // N committed transactions, then flush and exit
		n, _ := strconv.Atoi(os.Getenv("VERNEUIL_E2E_N"))
		for i := range n {
			must("INSERT INTO t(k, v) VALUES(?, randomblob(?))", i, rng.IntN(5000))
		}
		if err := r.Flush(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		db.Close()
		r.Close(ctx)
		return 0
	case "stages": // commit and flush until a failpoint kills the process
		for i := range 120 {
			tx, err := db.Begin()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 3
			}
			for range rng.IntN(20) + 1 {
				if _, err := tx.Exec("INSERT INTO t(k, v) VALUES(?, randomblob(?))", rng.IntN(1000), rng.IntN(70000)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 3
				}
			}
			if err := tx.Commit(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 3
			}
			if i%4 == 3 {
				if err := r.Flush(ctx); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
		}
		return 0 // the failpoint was never reached
	case "hang": // commit some rows, then leave a big transaction open
		must("PRAGMA cache_size=10")
		for i := range 20 {
			must("INSERT INTO t(k, v) VALUES(?, randomblob(100))", i)
		}
		if err := r.Flush(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		tx, _ := db.Begin()
		for range 200 {
			tx.Exec("INSERT INTO t(k, v) VALUES(-1, randomblob(4000))")
		}
		fmt.Println("ready")
		time.Sleep(time.Hour)
	}
	return 2
}
