// Command verneuil-snapbench measures the read-replica VFS
// verneuil_snapshot against a loopback S3 server (versitygw, installed by
// scripts/install-s3-server.sh and started by the benchmark), side by side
// with the same queries on the local database file and with a full
// restore, counting the server's requests (from its access log):
//
//   - warm point query latency: replica / local file (median of 2,000
//     indexed lookups, each its own read transaction, after warming);
//   - cold open + one indexed point query from a fresh process with empty
//     caches: requests, bytes fetched as a fraction of the database, time;
//   - full scan (SELECT count(*), sum(length(v)) over the table that fills
//     the database): replica cold (fresh process, empty caches) and warm,
//     local file cold (page cache dropped with fadvise) and warm, and
//     restore (what verneuilctl restore does) + the same query.
//
// Usage (make snapbench):
//
//	go run ./cmd/verneuil-snapbench [-size-mb 256] [-queries 2000] [-rounds 3] [-no-disk-cache]
//
// Targets (issue 11): warm point ≤ 1.2× local; cold point ≤ 6 requests and
// ≤ 1% of the database; cold scan ≤ 1.5× restore + query.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"golang.org/x/sys/unix"

	_ "github.com/verneuil-go/verneuil/internal/blob/s3blob"
	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replica"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
)

const (
	bucket  = "verneuil-snapbench"
	rowSize = 1000
	scanSQL = "SELECT count(*), sum(length(v)) FROM t"
	pointQ  = "SELECT length(v) FROM t WHERE k = ?"
)

func main() {
	if role := os.Getenv("VERNEUIL_SNAPBENCH_ROLE"); role != "" {
		if err := child(role); err != nil {
			fmt.Fprintln(os.Stderr, "verneuil-snapbench child:", err)
			os.Exit(1)
		}
		return
	}
	sizeMB := flag.Int("size-mb", 256, "database size in MiB")
	queries := flag.Int("queries", 2000, "warm point queries per side")
	rounds := flag.Int("rounds", 3, "rounds of the full-scan comparison")
	noDisk := flag.Bool("no-disk-cache", false, "replica processes without the disk cache (snapshot_disk_cache -1)")
	flag.Parse()
	if *noDisk {
		os.Setenv("VERNEUIL_SNAPBENCH_NODISK", "1") // inherited by the children
	}
	if err := run(*sizeMB, *queries, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "verneuil-snapbench:", err)
		os.Exit(1)
	}
}

func benchConfig(dir, endpoint string) *config.Config {
	cfg := &config.Config{
		SpoolDir: filepath.Join(dir, "spool"),
		CacheDir: filepath.Join(dir, "cache"),
		Targets: []config.Target{{URL: "s3://" + bucket + "/bench", Endpoint: endpoint,
			Region: s3test.Region, PathStyle: true}},
		Hostname:  "bench",
		LogLevel:  "warn",
		RateLimit: 20000,
		RateBurst: 2000,
		// Room for the whole database in memory, for the warm figures.
		SnapshotMemoryCache: 1 << 30,
		SnapshotDiskCache:   4 << 30,
	}
	cfg.ApplyDefaults()
	return cfg
}

// result is what a child process reports.
type result struct {
	OpenQuery    time.Duration  `json:"open_query"`
	ColdScan     time.Duration  `json:"cold_scan"`
	WarmScan     time.Duration  `json:"warm_scan"`
	WarmRequests int64          `json:"warm_requests"` // chunk fetches + checks during the warm scan
	Stats        replica.Stats  `json:"stats"`
	Answer       string         `json:"answer"`
	Extra        map[string]any `json:"extra,omitempty"`
}

func run(sizeMB, queries, rounds int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "verneuil-snapbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := s3test.StartServer(ctx, dir, bucket)
	if err != nil {
		return err
	}
	defer srv.Stop()
	fmt.Printf("verneuil-snapbench: versitygw at %s, %d CPUs, %d MiB database, 64 KiB chunks\n", srv.Endpoint, runtime.NumCPU(), sizeMB)

	cfg := benchConfig(filepath.Join(dir, "parent"), srv.Endpoint)
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer r.Close(ctx)
	dbPath := filepath.Join(dir, "bench.db")
	rows, err := build(ctx, r, dbPath, sizeMB)
	if err != nil {
		return err
	}
	fi, err := os.Stat(dbPath)
	if err != nil {
		return err
	}
	size := fi.Size()
	fmt.Printf("built %d rows, %.1f MiB, replicated\n\n", rows, float64(size)/(1<<20))
	uri := "file:verneuil://bench" + dbPath + "?vfs=verneuil_snapshot"
	keys := make([]int, queries)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range keys {
		keys[i] = rng.IntN(rows)
	}

	// Warm point queries, local then replica.
	local, err := sql.Open("sqlite3", "file:"+dbPath+"?vfs=unix&mode=ro")
	if err != nil {
		return err
	}
	defer local.Close()
	local.SetMaxOpenConns(1)
	snap, err := sql.Open("sqlite3", uri)
	if err != nil {
		return err
	}
	defer snap.Close()
	snap.SetMaxOpenConns(1)
	var want string
	for _, db := range []*sql.DB{local, snap} {
		if want, err = scan(db); err != nil { // warm up
			return err
		}
	}
	localP, err := pointLatency(local, keys)
	if err != nil {
		return err
	}
	reqBefore := srv.Requests.Load()
	snapP, err := pointLatency(snap, keys)
	if err != nil {
		return err
	}
	warmPointReqs := srv.Requests.Load() - reqBefore
	fmt.Printf("warm point query (median of %d): local %v, replica %v, ratio %.2f (target ≤ 1.2); replica requests %d (refresh checks, ≤ 1/s)\n",
		queries, localP, snapP, float64(snapP)/float64(localP), warmPointReqs)

	// Cold open + one point query in a fresh process.
	reqBefore = srv.Requests.Load()
	cold, err := runChild(dir, srv.Endpoint, "point", uri, fmt.Sprint(keys[0]))
	if err != nil {
		return err
	}
	reqs := srv.Requests.Load() - reqBefore
	fmt.Printf("cold open + point query (fresh process, empty caches): %v, %d requests (target ≤ 6; %d reads of latest, %d chunk GETs), %d KiB fetched = %.3f%% of the database (target ≤ 1%%)\n",
		cold.OpenQuery.Round(time.Microsecond), reqs, cold.Stats.TagChecks, cold.Stats.ChunkFetches,
		cold.Stats.ChunkBytes>>10, 100*float64(cold.Stats.ChunkBytes)/float64(size))

	// Full scans: rounds alternate the replica (a fresh process with
	// empty caches each time) and restore + query; medians are compared.
	var scans []result
	var restores []time.Duration
	var scanReqs []int64
	for round := range rounds {
		reqBefore = srv.Requests.Load()
		sc, err := runChild(dir, srv.Endpoint, "scan", uri, "")
		if err != nil {
			return err
		}
		scanReqs = append(scanReqs, srv.Requests.Load()-reqBefore)
		if sc.Answer != want {
			return fmt.Errorf("replica scan says %s, local %s", sc.Answer, want)
		}
		scans = append(scans, sc)
		rt, err := restoreAndScan(ctx, r, dbPath, filepath.Join(dir, fmt.Sprintf("restored-%d.db", round)), want)
		if err != nil {
			return err
		}
		restores = append(restores, rt)
	}
	slices.SortFunc(scans, func(a, b result) int { return int(a.ColdScan - b.ColdScan) })
	sc := scans[len(scans)/2]
	slices.Sort(restores)
	restoreT := restores[len(restores)/2]
	localCold, localWarm, err := localScans(dbPath, want)
	if err != nil {
		return err
	}
	fmt.Printf("full scan (%s), medians of %d rounds:\n", scanSQL, rounds)
	fmt.Printf("  replica cold %v (%d requests, %d chunk GETs, %d by readahead), warm %v (%d requests)\n",
		sc.ColdScan.Round(time.Millisecond), slices.Max(scanReqs), sc.Stats.ChunkFetches, sc.Stats.Readaheads, sc.WarmScan.Round(time.Millisecond), sc.WarmRequests)
	fmt.Printf("  replica process stats: %+v\n", sc.Stats)
	fmt.Printf("  local   cold %v, warm %v\n", localCold.Round(time.Millisecond), localWarm.Round(time.Millisecond))
	fmt.Printf("  restore + query %v\n", restoreT.Round(time.Millisecond))
	fmt.Printf("  replica cold / restore+query %.2f (target ≤ 1.5); replica warm / local warm %.2f; replica cold / local cold %.2f\n",
		float64(sc.ColdScan)/float64(restoreT), float64(sc.WarmScan)/float64(localWarm), float64(sc.ColdScan)/float64(localCold))
	return nil
}

// build writes a database of about sizeMB MiB through the replicating VFS
// and uploads it.
func build(ctx context.Context, r *replicator.Replicator, path string, sizeMB int) (int, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&_journal_mode=TRUNCATE&_sync=OFF")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB); CREATE INDEX t_k ON t(k)"); err != nil {
		return 0, err
	}
	rows := sizeMB << 20 / (rowSize + 60)
	const batch = 20000
	for done := 0; done < rows; done += batch {
		n := min(batch, rows-done)
		// k is a permutation of the row numbers: index order is not
		// table order.
		q := fmt.Sprintf("WITH RECURSIVE s(i) AS (SELECT %d UNION ALL SELECT i+1 FROM s WHERE i < %d) "+
			"INSERT INTO t(k, v) SELECT (i * 7919) %% %d, randomblob(%d) FROM s", done, done+n-1, rows, rowSize)
		if _, err := db.Exec(q); err != nil {
			return 0, err
		}
	}
	if err := r.Flush(ctx); err != nil {
		return 0, err
	}
	return rows, nil
}

func scan(db *sql.DB) (string, error) {
	var n, sum int64
	if err := db.QueryRow(scanSQL).Scan(&n, &sum); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d rows, %d bytes", n, sum), nil
}

func pointLatency(db *sql.DB, keys []int) (time.Duration, error) {
	lat := make([]time.Duration, len(keys))
	for i, k := range keys {
		start := time.Now()
		var n int
		if err := db.QueryRow(pointQ, k).Scan(&n); err != nil {
			return 0, fmt.Errorf("point query k=%d: %w", k, err)
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}

// localScans scans the local file after dropping it from the page cache,
// then again.
func localScans(path, want string) (cold, warm time.Duration, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	f.Close()
	for i := range 2 {
		db, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&mode=ro")
		if err != nil {
			return 0, 0, err
		}
		start := time.Now()
		got, err := scan(db)
		d := time.Since(start)
		db.Close()
		if err != nil {
			return 0, 0, err
		}
		if got != want {
			return 0, 0, fmt.Errorf("local scan: %s, want %s", got, want)
		}
		if i == 0 {
			cold = d
		} else {
			warm = d
		}
	}
	return cold, warm, nil
}

// restoreAndScan is verneuilctl restore (same function, 8 fetches in
// flight) followed by the scan of the restored file.
func restoreAndScan(ctx context.Context, r *replicator.Replicator, path, out, want string) (time.Duration, error) {
	_, key, err := replicator.ReplicaName(r.Config(), path, "")
	if err != nil {
		return 0, err
	}
	start := time.Now()
	m, err := restore.Latest(ctx, r.Targets()[0], key)
	if err != nil {
		return 0, err
	}
	if err := restore.ToFile(ctx, r.Targets()[0], m, out); err != nil {
		return 0, err
	}
	db, err := sql.Open("sqlite3", "file:"+out+"?vfs=unix&mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	got, err := scan(db)
	if err != nil {
		return 0, err
	}
	if got != want {
		return 0, fmt.Errorf("restored scan: %s, want %s", got, want)
	}
	return time.Since(start), nil
}

// runChild runs this program as a fresh process with empty caches.
func runChild(dir, endpoint, role, uri, arg string) (result, error) {
	var res result
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	cdir, err := os.MkdirTemp(dir, "child-")
	if err != nil {
		return res, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "VERNEUIL_SNAPBENCH_ROLE="+role, "VERNEUIL_SNAPBENCH_DIR="+cdir,
		"VERNEUIL_SNAPBENCH_ENDPOINT="+endpoint, "VERNEUIL_SNAPBENCH_URI="+uri, "VERNEUIL_SNAPBENCH_ARG="+arg)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("child %s: %w", role, err)
	}
	return res, json.Unmarshal(out, &res)
}

func child(role string) error {
	ctx := context.Background()
	if p := os.Getenv("VERNEUIL_SNAPBENCH_CPUPROFILE"); p != "" && role == "scan" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cfg := benchConfig(os.Getenv("VERNEUIL_SNAPBENCH_DIR"), os.Getenv("VERNEUIL_SNAPBENCH_ENDPOINT"))
	if os.Getenv("VERNEUIL_SNAPBENCH_NODISK") != "" {
		cfg.SnapshotDiskCache = -1
	}
	off := false
	cfg.Replicate = &off
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer r.Close(ctx)
	var res result
	start := time.Now()
	db, err := sql.Open("sqlite3", os.Getenv("VERNEUIL_SNAPBENCH_URI"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	switch role {
	case "point":
		var n int
		if err := db.QueryRow(pointQ, os.Getenv("VERNEUIL_SNAPBENCH_ARG")).Scan(&n); err != nil {
			return err
		}
		res.OpenQuery = time.Since(start)
	case "scan":
		if err := db.Ping(); err != nil {
			return err
		}
		start = time.Now()
		if res.Answer, err = scan(db); err != nil {
			return err
		}
		res.ColdScan = time.Since(start)
		before, _ := r.SnapshotStats()
		start = time.Now()
		if _, err := scan(db); err != nil {
			return err
		}
		res.WarmScan = time.Since(start)
		after, _ := r.SnapshotStats()
		// A read of latest is one request, whether or not it loaded a
		// manifest (a delta's base would be one more).
		res.WarmRequests = after.ChunkFetches - before.ChunkFetches + after.TagChecks - before.TagChecks
	}
	res.Stats, _ = r.SnapshotStats()
	return json.NewEncoder(os.Stdout).Encode(res)
}
