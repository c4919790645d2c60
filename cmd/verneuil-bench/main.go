// Command verneuil-bench measures the commit-time overhead of the
// replicating VFS against SQLite's plain unix VFS, side by side in one run,
// because shared machines are noisy: each round runs the same transactions
// through unix and through verneuil back to back (the order alternating),
// the round's ratio is verneuil's time over unix's, and the result is the
// median of the per-round ratios with their spread (interquartile range,
// and the medians of the odd and even rounds). Replication is on, to a
// local-directory target. A last scenario runs two writer processes on one
// database with busy_timeout and compares commit latency p50/p99.
//
// Usage:
//
//	go run ./cmd/verneuil-bench [-rounds 21] [-dir DIR] [-scale 1] [-only N]
//	go run ./cmd/verneuil-bench -only N -cpu VFS [-cpu-txns 20000]
//
// -cpu runs scenario N through one VFS alone and prints the process's CPU
// time per transaction (run it once per VFS: separate processes).
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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
	journal string // journal_mode
	target  float64
	tempDir bool // a temp dir under $TMPDIR
	tmpfs   bool // a temp dir under /dev/shm
}

func main() {
	rounds := flag.Int("rounds", 21, "paired rounds per scenario")
	dir := flag.String("dir", "", "directory for the databases (default: a temp dir under the current directory's file system)")
	scale := flag.Float64("scale", 1, "multiply transaction counts (smaller for a quick run)")
	only := flag.Int("only", 0, "run only scenario N (1-based)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	memprofile := flag.String("memprofile", "", "write an allocation profile to this file at the end (every allocation sampled)")
	cpuVFS := flag.String("cpu", "", "run scenario -only N through this VFS alone and print CPU time per transaction")
	cpuTxns := flag.Int("cpu-txns", 20000, "transactions of the -cpu run")
	child := flag.String("contend-child", "", "internal: run as the second writer of the contended scenario (PATH:VFS:TXNS)")
	spoolDir := flag.String("spool", "", "internal: the contended child's spool directory")
	storeDir := flag.String("store", "", "internal: the contended child's target directory")
	flag.Parse()
	if *child != "" {
		if err := contendChild(*child, *spoolDir, *storeDir); err != nil {
			fmt.Fprintln(os.Stderr, "verneuil-bench child:", err)
			os.Exit(1)
		}
		return
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 1
	}
	if err := run(*rounds, *dir, *scale, *only, *cpuVFS, *cpuTxns); err != nil {
		fmt.Fprintln(os.Stderr, "verneuil-bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	if *memprofile != "" {
		if err := writeHeapProfile(*memprofile); err != nil {
			fmt.Fprintln(os.Stderr, "verneuil-bench:", err)
			os.Exit(1)
		}
	}
}

// writeHeapProfile writes the allocation profile (allocs since the start:
// go tool pprof -sample_index=alloc_space or alloc_objects) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("memprofile %s: %w", path, err)
	}
	return f.Close()
}

func run(rounds int, dir string, scale float64, only int, cpuVFS string, cpuTxns int) error {
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
		{name: "1-row txns, synchronous=FULL", sync: "FULL", journal: "DELETE", txns: n(60), rows: 1, target: 1.05},
		{name: "1000-row txns, synchronous=FULL", sync: "FULL", journal: "DELETE", txns: n(20), rows: 1000, target: 1.05},
		{name: "1-row txns, synchronous=OFF, temp dir", sync: "OFF", journal: "DELETE", txns: n(1000), rows: 1, target: 1.3, tempDir: true},
		{name: "1-row txns, TRUNCATE, sync=OFF, tmpfs", sync: "OFF", journal: "TRUNCATE", txns: n(2000), rows: 1, target: 1.2, tmpfs: true},
		// WAL mode: captured at the release of the WAL write lock.
		{name: "WAL 1-row txns, synchronous=FULL", sync: "FULL", journal: "WAL", txns: n(150), rows: 1, target: 1.10},
		{name: "WAL 1000-row txns, synchronous=FULL", sync: "FULL", journal: "WAL", txns: n(30), rows: 1000, target: 1.10},
		{name: "WAL 1-row txns, synchronous=NORMAL", sync: "NORMAL", journal: "WAL", txns: n(1000), rows: 1, target: 1.10},
		{name: "WAL 1000-row txns, synchronous=NORMAL", sync: "NORMAL", journal: "WAL", txns: n(50), rows: 1000, target: 1.10},
	}
	fmt.Printf("verneuil-bench: %d paired rounds per scenario (unix and verneuil back to back, order alternating), replication on to %s\n", rounds, cfg.Targets[0].URL)
	fmt.Printf("ratio: median of the per-round ratios verneuil/unix; IQR: their interquartile range; odd/even: the medians of the odd and of the even rounds\n\n")
	fmt.Printf("%-40s %11s %11s %8s %15s %15s %7s\n", "scenario", "unix µs/txn", "vern µs/txn", "ratio", "IQR", "odd/even", "target")
	for i, sc := range scenarios {
		if only != 0 && only != i+1 {
			continue
		}
		d := base
		switch {
		case sc.tmpfs:
			if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
				fmt.Printf("%-40s skipped: no /dev/shm\n", sc.name)
				continue
			}
			fallthrough
		case sc.tempDir:
			parent := ""
			if sc.tmpfs {
				parent = "/dev/shm"
			}
			if d, err = os.MkdirTemp(parent, "verneuil-bench-tmp-"); err != nil {
				return err
			}
			defer os.RemoveAll(d)
		}
		if cpuVFS != "" {
			if err := cpuPerTxn(sc, d, cpuVFS, cpuTxns); err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			continue
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
		ratios := make([]float64, len(unix))
		var odd, even []float64
		for j := range unix {
			ratios[j] = ver[j] / unix[j]
			if j%2 == 0 {
				even = append(even, ratios[j])
			} else {
				odd = append(odd, ratios[j])
			}
		}
		ratio := median(ratios)
		verdict := "ok"
		if ratio > sc.target {
			verdict = "OVER"
		}
		fmt.Printf("%-40s %11.1f %11.1f %7.3fx %7.3f-%.3f %7.3f/%.3f %6.2fx %s\n", sc.name, median(unix), median(ver), ratio,
			quantile(ratios, 0.25), quantile(ratios, 0.75), median(odd), median(even), sc.target, verdict)
	}
	if cpuVFS == "" && (only == 0 || only == len(scenarios)+1) {
		if err := contended(ctx, r, cfg, base, rounds, scale); err != nil {
			return fmt.Errorf("contended writers: %w", err)
		}
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
		db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=%s&_journal_mode=%s&_sync=%s", p, vfs, sc.journal, sc.sync))
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

func median(xs []float64) float64 { return quantile(xs, 0.5) }

// quantile returns the q-quantile of xs, interpolating between ranks.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}
