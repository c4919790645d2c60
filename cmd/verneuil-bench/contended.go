package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// contendPace is the pause between a writer's transactions: two writers
// committing every millisecond or so, like two busy application processes.
const contendPace = time.Millisecond

// contended runs the contended-writers scenario: in each round, for unix
// and for verneuil (order alternating), this process and a child process
// both insert single rows into one database (journal_mode=DELETE,
// synchronous=OFF so that the disk does not hide the VFS, on /dev/shm
// when there is one, busy_timeout 5 s), and every commit's latency (the INSERT's, lock waits
// included) of both writers is collected. It prints the median over rounds
// of p50 and p99 for each VFS and of the per-round ratios.
func contended(ctx context.Context, r *replicator.Replicator, cfg *config.Config, base string, rounds int, scale float64) error {
	if err := r.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	txns := max(20, int(300*scale))
	rounds = max(3, (rounds+1)/2)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "verneuil-bench-contended-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		base = d
	}
	paths := map[string]string{}
	for _, vfs := range []string{"unix", "verneuil"} {
		paths[vfs] = filepath.Join(base, "contended-"+vfs+".db")
		db, err := openContended(paths[vfs], vfs)
		if err != nil {
			return err
		}
		_, err = db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
		db.Close()
		if err != nil {
			return err
		}
	}
	var p50 = map[string][]float64{}
	var p99 = map[string][]float64{}
	var r50, r99 []float64
	for i := range rounds {
		order := []string{"unix", "verneuil"}
		if i%2 == 1 {
			order = []string{"verneuil", "unix"}
		}
		got := map[string][]float64{}
		for _, vfs := range order {
			lat, err := contendRound(self, paths[vfs], vfs, txns, cfg.SpoolDir, localDir(cfg))
			if err != nil {
				return fmt.Errorf("%s: %w", vfs, err)
			}
			got[vfs] = lat
			p50[vfs] = append(p50[vfs], quantile(lat, 0.5))
			p99[vfs] = append(p99[vfs], quantile(lat, 0.99))
		}
		r50 = append(r50, quantile(got["verneuil"], 0.5)/quantile(got["unix"], 0.5))
		r99 = append(r99, quantile(got["verneuil"], 0.99)/quantile(got["unix"], 0.99))
	}
	fmt.Printf("\ncontended writers: 2 processes, %d single-row commits each per round, one every %v, synchronous=OFF, busy_timeout 5 s, %d rounds, in %s\n", txns, contendPace, rounds, base)
	fmt.Printf("%-40s %11s %11s %8s %15s %7s\n", "commit latency", "unix µs", "vern µs", "ratio", "IQR", "target")
	for _, row := range []struct {
		name   string
		u, v   []float64
		ratios []float64
		target float64
	}{
		{"p50", p50["unix"], p50["verneuil"], r50, 1.2},
		{"p99", p99["unix"], p99["verneuil"], r99, 1.1},
	} {
		ratio := median(row.ratios)
		verdict := "ok"
		if ratio > row.target {
			verdict = "OVER"
		}
		fmt.Printf("%-40s %11.0f %11.0f %7.3fx %7.3f-%.3f %6.2fx %s\n", row.name, median(row.u), median(row.v), ratio,
			quantile(row.ratios, 0.25), quantile(row.ratios, 0.75), row.target, verdict)
	}
	return nil
}

// localDir is the directory of the first target (a file:// URL).
func localDir(cfg *config.Config) string {
	return strings.TrimPrefix(cfg.Targets[0].URL, "file://")
}

func openContended(path, vfs string) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=%s&_journal_mode=DELETE&_sync=OFF&_busy_timeout=5000", path, vfs))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// contendRound runs one round through vfs: a child process and this one
// write txns transactions each, started together; it returns every
// commit's latency in µs.
func contendRound(self, path, vfs string, txns int, spoolDir, storeDir string) ([]float64, error) {
	cmd := exec.Command(self, "-contend-child", fmt.Sprintf("%s:%s:%d", path, vfs, txns), "-spool", spoolDir, "-store", storeDir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer cmd.Wait()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		return nil, fmt.Errorf("child not ready: %q %v", line, err)
	}
	db, err := openContended(path, vfs)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.Exec("SELECT count(*) FROM t"); err != nil { // open the file outside the timing
		return nil, err
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		return nil, err
	}
	mine, err := writeTimed(db, txns)
	if err != nil {
		return nil, err
	}
	rest, err := io.ReadAll(out)
	if err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("child: %w", err)
	}
	for _, f := range strings.Fields(string(rest)) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, fmt.Errorf("child output: %w", err)
		}
		mine = append(mine, v)
	}
	if len(mine) != 2*txns {
		return nil, fmt.Errorf("%d latencies, want %d", len(mine), 2*txns)
	}
	return mine, nil
}

// writeTimed inserts txns rows, one transaction each, pausing contendPace
// between them, and returns each commit's latency in µs.
func writeTimed(db *sql.DB, txns int) ([]float64, error) {
	lat := make([]float64, 0, txns)
	for i := range txns {
		t0 := time.Now()
		if _, err := db.Exec("INSERT INTO t(a, b) VALUES(?, 'some text payload for the row')", i); err != nil {
			return nil, err
		}
		lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e3)
		time.Sleep(contendPace)
	}
	return lat, nil
}

// contendChild is the second writer: spec is PATH:VFS:TXNS. Through
// verneuil it replicates with its own Replicator to the same spool and
// target as the parent. It prints "ready", waits for a line on stdin,
// writes, and prints its latencies.
func contendChild(spec, spoolDir, storeDir string) error {
	parts := strings.Split(spec, ":")
	if len(parts) != 3 {
		return fmt.Errorf("bad spec %q", spec)
	}
	path, vfs := parts[0], parts[1]
	txns, err := strconv.Atoi(parts[2])
	if err != nil {
		return err
	}
	ctx := context.Background()
	cfg := &config.Config{SpoolDir: spoolDir, Targets: []config.Target{{URL: config.FileURL(storeDir)}}, LogLevel: "error"}
	cfg.ApplyDefaults()
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer r.Close(ctx)
	db, err := openContended(path, vfs)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("SELECT count(*) FROM t"); err != nil {
		return err
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	lat, err := writeTimed(db, txns)
	if err != nil {
		return err
	}
	if os.Getenv("VERNEUIL_BENCH_CHAIN") != "" {
		c, m := tracker.ChainCounts()
		fmt.Fprintf(os.Stderr, "child %s: %d commits continued from the other's, %d adopted or rescanned\n", vfs, c, m)
	}
	w := bufio.NewWriter(os.Stdout)
	for _, v := range lat {
		fmt.Fprintf(w, "%.1f\n", v)
	}
	return w.Flush()
}
