// Command verneuil-bench measures the commit-time overhead of the
// replicating VFS against SQLite's plain unix VFS, side by side in one run
// (rounds interleaved, order alternating, medians compared), because shared
// machines are noisy. Replication is on, to a local-directory target.
//
// Usage:
//
//	go run ./cmd/verneuil-bench [-rounds 7] [-dir DIR] [-scale 1]
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

type scenario struct {
	name    string
	sync    string // PRAGMA synchronous
	txns    int    // transactions per round
	rows    int    // rows per transaction
	target  float64
	tempDir bool
}

func main() {
	rounds := flag.Int("rounds", 7, "interleaved rounds per scenario")
	dir := flag.String("dir", "", "directory for the databases (default: a temp dir under the current directory's file system)")
	scale := flag.Float64("scale", 1, "multiply transaction counts (smaller for a quick run)")
	only := flag.Int("only", 0, "run only scenario N (1-based)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*rounds, *dir, *scale, *only); err != nil {
		fmt.Fprintln(os.Stderr, "verneuil-bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(rounds int, dir string, scale float64, only int) error {
	ctx := context.Background()
	base, err := os.MkdirTemp(dir, "verneuil-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	store := filepath.Join(base, "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	cfg := &config.Config{SpoolDir: filepath.Join(base, "spool"), Targets: []config.Target{{URL: config.FileURL(store)}}, LogLevel: "error"}
	cfg.ApplyDefaults()
	if os.Getenv("VERNEUIL_BENCH_NO_CAPTURE") != "" {
		off := false
		cfg.Replicate = &off // the shim passes through: measures the wrapper alone
	}
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer r.Close(ctx)

	n := func(x int) int { return max(1, int(float64(x)*scale)) }
	scenarios := []scenario{
		{name: "1-row txns, synchronous=FULL", sync: "FULL", txns: n(150), rows: 1, target: 1.05},
		{name: "1000-row txns, synchronous=FULL", sync: "FULL", txns: n(40), rows: 1000, target: 1.05},
		{name: "1-row txns, synchronous=OFF, temp dir", sync: "OFF", txns: n(3000), rows: 1, target: 1.3, tempDir: true},
	}
	fmt.Printf("verneuil-bench: %d interleaved rounds per scenario, replication on to %s\n\n", rounds, cfg.Targets[0].URL)
	fmt.Printf("%-40s %14s %14s %8s %8s\n", "scenario", "unix µs/txn", "verneuil µs/txn", "ratio", "target")
	for i, sc := range scenarios {
		if only != 0 && only != i+1 {
			continue
		}
		d := base
		if sc.tempDir {
			if d, err = os.MkdirTemp("", "verneuil-bench-tmp-"); err != nil {
				return err
			}
			defer os.RemoveAll(d)
		}
		// Drain the previous scenario's replication so it does not slow
		// this one down.
		if err := r.Flush(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		unix, ver, err := measure(ctx, r, sc, d, rounds)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		mu, mv := median(unix), median(ver)
		ratio := mv / mu
		verdict := "ok"
		if ratio > sc.target {
			verdict = "OVER"
		}
		fmt.Printf("%-40s %14.1f %14.1f %7.3fx %6.2fx %s\n", sc.name, mu, mv, ratio, sc.target, verdict)
	}
	if err := r.Flush(ctx); err != nil {
		return fmt.Errorf("final flush: %w", err)
	}
	st := r.Stats()
	fmt.Printf("\nreplication: %d manifests and %d chunks uploaded; lag max %.3fs\n", st.Manifests, st.ChunksUploaded, st.LagMax)
	return nil
}

// measure returns per-round µs/txn for unix and verneuil.
func measure(ctx context.Context, r *replicator.Replicator, sc scenario, dir string, rounds int) (unix, ver []float64, err error) {
	open := func(vfs string) (*sql.DB, error) {
		p := filepath.Join(dir, fmt.Sprintf("bench-%s-%d.db", vfs, time.Now().UnixNano()))
		db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=%s&_journal_mode=DELETE&_sync=%s", p, vfs, sc.sync))
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)"); err != nil {
			return nil, err
		}
		return db, nil
	}
	dbs := map[string]*sql.DB{}
	for _, vfs := range []string{"unix", "verneuil"} {
		if dbs[vfs], err = open(vfs); err != nil {
			return nil, nil, err
		}
		defer dbs[vfs].Close()
	}
	// Warm-up round, not counted.
	for _, vfs := range []string{"unix", "verneuil"} {
		if _, err := round(dbs[vfs], sc, max(1, sc.txns/10)); err != nil {
			return nil, nil, err
		}
	}
	for i := range rounds {
		order := []string{"unix", "verneuil"}
		if i%2 == 1 {
			order = []string{"verneuil", "unix"}
		}
		for _, vfs := range order {
			us, err := round(dbs[vfs], sc, sc.txns)
			if err != nil {
				return nil, nil, err
			}
			if vfs == "unix" {
				unix = append(unix, us)
			} else {
				ver = append(ver, us)
			}
		}
	}
	return unix, ver, nil
}

// round runs txns transactions and returns µs per transaction.
func round(db *sql.DB, sc scenario, txns int) (float64, error) {
	start := time.Now()
	for i := range txns {
		tx, err := db.Begin()
		if err != nil {
			return 0, err
		}
		stmt, err := tx.Prepare("INSERT INTO t(a, b) VALUES(?, ?)")
		if err != nil {
			return 0, err
		}
		for j := range sc.rows {
			if _, err := stmt.Exec(i*sc.rows+j, "some text payload for the row"); err != nil {
				return 0, err
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(start).Microseconds()) / float64(txns), nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
