// Command verneuil-s3bench measures replication to an S3-compatible server
// on the loopback interface (versitygw, installed by
// scripts/install-s3-server.sh and started by the benchmark):
//
//	(a) replication lag (commit → manifest visible in the store) p50, p99
//	    and max, and S3 requests per committed transaction, for one
//	    database committing 100 transactions a second;
//	(b) the same for 1,000 databases committing once a second each;
//	(c) S3 requests made by 10,000 idle replicated databases over one
//	    minute, and the resident memory per replicated database (with the
//	    connections open, against the same databases on the plain unix VFS,
//	    and after the connections closed).
//
// Usage:
//
//	go run ./cmd/verneuil-s3bench [-only a|b|c] [-duration 30s] [-dbs 1000]
//	    [-idle 10000] [-idle-window 1m] [-workers 8]
//
// Lag is measured end to end: each transaction's commit time is taken by
// the benchmark; the copier records when each manifest became visible in
// every target, and the benchmark attributes each transaction to the first
// manifest that contains it. S3 requests are counted by the server (its
// access log) and by the copier. Writers use PRAGMA synchronous=OFF, so
// that a 2-core machine measures replication rather than fsync.
// Targets: p99 ≤ 1.5 s, max ≤ 5 s, 0 requests for idle databases, ≤ 20 KB
// per idle database.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

const bucket = "verneuil-bench"

type options struct {
	only       string
	duration   time.Duration
	dbs        int
	idle       int
	idleWindow time.Duration
	idleClosed bool
	// idleCreators is how many goroutines create the databases of (c).
	idleCreators int
	workers      int
	dir          string
}

func main() {
	if role := os.Getenv("VERNEUIL_S3BENCH_ROLE"); role != "" {
		os.Exit(runChild(role))
	}
	var o options
	flag.StringVar(&o.only, "only", "", "run only these scenarios (letters among a, b, c)")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "length of the measured load in (a) and (b)")
	flag.IntVar(&o.dbs, "dbs", 1000, "databases in (b)")
	flag.IntVar(&o.idle, "idle", 10000, "idle databases in (c)")
	flag.DurationVar(&o.idleWindow, "idle-window", time.Minute, "how long (c) watches the idle databases")
	flag.IntVar(&o.idleCreators, "idle-creators", 2*runtime.NumCPU(), "in (c), how many goroutines create the databases in parallel")
	flag.BoolVar(&o.idleClosed, "idle-closed", false, "in (c), close each database's connection after its transaction (the default keeps them open, as a multi-tenant server would)")
	flag.IntVar(&o.workers, "workers", 8, "copier workers (copier_workers)")
	flag.StringVar(&o.dir, "dir", "", "parent of the work directory (default $TMPDIR)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the benchmark process to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "verneuil-s3bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func benchConfig(dir, endpoint, prefix string, workers int) *config.Config {
	cfg := &config.Config{
		SpoolDir: filepath.Join(dir, prefix, "spool"),
		Targets: []config.Target{{URL: "s3://" + bucket + "/" + prefix, Endpoint: endpoint,
			Region: s3test.Region, PathStyle: true}},
		Hostname:      "bench",
		LogLevel:      "warn",
		CopierWorkers: workers,
		// Size the process-wide limit for the load (the default, 100/s,
		// is for a host's share of a cloud bucket).
		RateLimit: 20000,
		RateBurst: 2000,
	}
	cfg.ApplyDefaults()
	cfg.ScanInterval = config.Duration(20 * time.Second)
	return cfg
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp(o.dir, "verneuil-s3bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := s3test.StartServer(ctx, dir, bucket)
	if err != nil {
		return err
	}
	defer srv.Stop()
	fmt.Printf("verneuil-s3bench: versitygw at %s, %d CPUs, copier_workers %d, upload_interval 1s\n",
		srv.Endpoint, runtime.NumCPU(), o.workers)
	// SQLite (journal files), the spool and the server create files all
	// the time: say what that costs here.
	fmt.Printf("work directory %s: creating and renaming a small file takes %v\n\n", dir, probeFS(dir))
	want := func(s string) bool { return o.only == "" || strings.Contains(o.only, s) }
	if want("a") {
		res, err := loadScenario(ctx, srv, dir, "hot", 1, 100, o)
		if err != nil {
			return fmt.Errorf("(a): %w", err)
		}
		res.print("(a) 1 database at 100 tx/s")
	}
	if want("b") {
		res, err := loadScenario(ctx, srv, dir, "many", o.dbs, 1, o)
		if err != nil {
			return fmt.Errorf("(b): %w", err)
		}
		res.print(fmt.Sprintf("(b) %d databases at 1 tx/s each", o.dbs))
	}
	if want("c") {
		if err := idleScenario(ctx, srv, dir, o); err != nil {
			return fmt.Errorf("(c): %w", err)
		}
	}
	fmt.Println("\ntargets: lag p99 ≤ 1.5 s, max ≤ 5 s; 0 requests for idle databases; ≤ 20 KB RSS per idle database")
	return nil
}

// publish is one manifest made visible: the commit time it carries (its
// newest commit) and when it became visible.
type publish struct{ commit, signal, visible time.Time }

type loadResult struct {
	txs                 int
	lags                []time.Duration
	copierLags          []time.Duration // per manifest: signal → visible
	unmatched           int
	serverReqs, copReqs int64
	manifests           int64
	elapsed             time.Duration
	slowestCommit       time.Duration
}

func (r loadResult) print(title string) {
	slices.Sort(r.lags)
	q := func(p float64) time.Duration {
		if len(r.lags) == 0 {
			return 0
		}
		return r.lags[min(len(r.lags)-1, int(p*float64(len(r.lags))))]
	}
	fmt.Printf("%s: %d transactions in %v (slowest commit %v)\n", title, r.txs, r.elapsed.Round(time.Millisecond), r.slowestCommit.Round(time.Microsecond))
	fmt.Printf("    replication lag  p50 %.3fs  p99 %.3fs  max %.3fs", q(0.50).Seconds(), q(0.99).Seconds(), q(1).Seconds())
	if r.unmatched > 0 {
		fmt.Printf("  (%d transactions not seen published)", r.unmatched)
	}
	fmt.Println()
	slices.Sort(r.copierLags)
	if n := len(r.copierLags); n > 0 {
		fmt.Printf("    of which copier  p50 %.3fs  p99 %.3fs  max %.3fs  (signal from the tracker → visible, per manifest)\n",
			r.copierLags[n/2].Seconds(), r.copierLags[min(n-1, n*99/100)].Seconds(), r.copierLags[n-1].Seconds())
	}
	fmt.Printf("    S3 requests      %.3f per transaction (server count %d; copier count %d), %d manifests\n",
		float64(r.serverReqs)/float64(max(r.txs, 1)), r.serverReqs, r.copReqs, r.manifests)
}

// loadScenario commits rate transactions per second to each of n databases
// for o.duration and measures the replication lag of every transaction.
func loadScenario(ctx context.Context, srv *s3test.Server, dir, prefix string, n int, rate float64, o options) (loadResult, error) {
	var res loadResult
	cfg := benchConfig(dir, srv.Endpoint, prefix, o.workers)
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer r.Close(context.Background())
	dbs := make([]*sql.DB, n)
	keys := make([]string, n)
	for i := range n {
		p := filepath.Join(dir, prefix, fmt.Sprintf("db%05d.db", i))
		if dbs[i], err = sql.Open("sqlite3", "file:"+p+"?vfs=verneuil&_journal_mode=DELETE&_sync=OFF"); err != nil {
			return res, err
		}
		defer dbs[i].Close()
		dbs[i].SetMaxOpenConns(1)
		if _, err := dbs[i].Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT)"); err != nil {
			return res, err
		}
		if _, keys[i], err = replicator.ReplicaName(cfg, p, ""); err != nil {
			return res, err
		}
	}
	if err := r.Flush(ctx); err != nil {
		return res, fmt.Errorf("initial flush: %w", err)
	}
	time.Sleep(1500 * time.Millisecond) // let coalescing windows pass
	keyIdx := make(map[string]int, n)
	for i, k := range keys {
		keyIdx[k] = i
	}

	// Watch publications: the copier records when each manifest became
	// visible; polling only needs to be faster than one upload interval.
	pubs := make([][]publish, n)
	lastSeen := make([]uint64, n)
	for _, d := range r.DBStats() {
		if i, ok := keyIdx[d.Key]; ok {
			lastSeen[i] = d.LastVersion
		}
	}
	poll := func() {
		for _, d := range r.DBStats() {
			i, ok := keyIdx[d.Key]
			if !ok || d.LastVersion == lastSeen[i] {
				continue
			}
			lastSeen[i] = d.LastVersion
			pubs[i] = append(pubs[i], publish{d.LastCommitTime, d.LastSignal, d.LastVisible})
		}
	}
	stopPoll := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopPoll:
				poll()
				return
			case <-t.C:
				poll()
			}
		}
	}()

	type tx struct{ begin, commit time.Time }
	txs := make([][]tx, n)
	serverBefore, st0 := srv.Requests.Load(), r.Stats()
	start := time.Now()
	end := start.Add(o.duration)
	var wg sync.WaitGroup
	var slowest atomic.Int64
	errs := make(chan error, n)
	period := time.Duration(float64(time.Second) / rate)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			next := start.Add(time.Duration(rng.Int64N(int64(period)))) // random phase
			for k := 0; ; k++ {
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				if time.Now().After(end) || ctx.Err() != nil {
					return
				}
				b := time.Now()
				if _, err := dbs[i].Exec("INSERT INTO t(k, v) VALUES(?, ?)", k, "some payload of a typical row, about eighty bytes long........"); err != nil {
					errs <- fmt.Errorf("db %d: %w", i, err)
					return
				}
				c := time.Now()
				txs[i] = append(txs[i], tx{b, c})
				if d := c.Sub(b); int64(d) > slowest.Load() {
					slowest.Store(int64(d))
				}
				next = next.Add(period)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		close(stopPoll)
		<-pollDone
		return res, err
	}
	res.elapsed = time.Since(start)
	res.slowestCommit = time.Duration(slowest.Load())
	// Wait for the background copier to publish the last transactions.
	waitEnd := time.Now().Add(30 * time.Second)
	for time.Now().Before(waitEnd) {
		time.Sleep(200 * time.Millisecond)
		st := r.Stats()
		if st.Running == 0 && st.Ready == 0 && st.PendingDatabases == 0 && time.Since(start) > o.duration+2*time.Second {
			break
		}
	}
	close(stopPoll)
	<-pollDone
	st1 := r.Stats()
	res.serverReqs = srv.Requests.Load() - serverBefore
	res.copReqs = st1.Requests - st0.Requests
	res.manifests = st1.Manifests - st0.Manifests
	for i := range n {
		ps := pubs[i]
		for _, p := range ps {
			if !p.signal.IsZero() {
				res.copierLags = append(res.copierLags, p.visible.Sub(p.signal))
			}
		}
		j := 0
		for _, t := range txs[i] {
			res.txs++
			// The first manifest whose newest commit is not older than
			// the transaction's start contains it.
			for j < len(ps) && ps[j].commit.Before(t.begin) {
				j++
			}
			if j == len(ps) {
				res.unmatched++
				continue
			}
			res.lags = append(res.lags, ps[j].visible.Sub(t.commit))
		}
	}
	return res, nil
}

// idleResult is what a child process reports for (c).
type idleResult struct {
	DBs                int     `json:"dbs"`
	CreateSecs         float64 `json:"create_seconds"`
	CreateCPU          float64 `json:"create_cpu_seconds"` // user+system of the process while creating and flushing
	FlushSecs          float64 `json:"flush_seconds"`
	RSSBase            int64   `json:"rss_base"`
	RSSOpen            int64   `json:"rss_open"`
	RSSClosed          int64   `json:"rss_closed"`
	HeapBase           int64   `json:"heap_base"`
	HeapOpen           int64   `json:"heap_open"`
	HeapClosed         int64   `json:"heap_closed"`
	IdleRequests       int64   `json:"idle_requests"` // copier count in the child; server count in the parent
	CopierIdleRequests int64   `json:"-"`
	Scans              int64   `json:"scans"`
	SpoolsScanned      int64   `json:"spools_scanned"` // by the scans of the idle window
}

func idleScenario(ctx context.Context, srv *s3test.Server, dir string, o options) error {
	runRole := func(role string) (idleResult, error) {
		var res idleResult
		cmd := exec.CommandContext(ctx, os.Args[0])
		cmd.Env = append(os.Environ(), "VERNEUIL_S3BENCH_ROLE="+role,
			"VERNEUIL_S3BENCH_DIR="+filepath.Join(dir, role),
			"VERNEUIL_S3BENCH_ENDPOINT="+srv.Endpoint,
			"VERNEUIL_S3BENCH_N="+strconv.Itoa(o.idle),
			"VERNEUIL_S3BENCH_WINDOW="+o.idleWindow.String(),
			"VERNEUIL_S3BENCH_CLOSED="+strconv.FormatBool(o.idleClosed),
			"VERNEUIL_S3BENCH_WORKERS="+strconv.Itoa(o.workers),
			"VERNEUIL_S3BENCH_CREATORS="+strconv.Itoa(o.idleCreators))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return res, err
		}
		if err := cmd.Start(); err != nil {
			return res, err
		}
		// The child announces its idle window; the server counts the
		// requests made during it.
		var begin int64
		var last string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch last = sc.Text(); last {
			case "IDLE_BEGIN":
				begin = srv.Requests.Load()
			case "IDLE_END":
				res.IdleRequests = srv.Requests.Load() - begin
			}
		}
		if err := cmd.Wait(); err != nil {
			return res, fmt.Errorf("%s child: %w", role, err)
		}
		copierIdle := res.IdleRequests
		if err := json.Unmarshal([]byte(last), &res); err != nil {
			return res, fmt.Errorf("%s child output %q: %w", role, last, err)
		}
		res.CopierIdleRequests, res.IdleRequests = res.IdleRequests, copierIdle
		return res, nil
	}
	unix, err := runRole("idle-unix")
	if err != nil {
		return err
	}
	ver, err := runRole("idle-verneuil")
	if err != nil {
		return err
	}
	kb := func(b int64) float64 { return float64(b) / 1024 / float64(ver.DBs) }
	fmt.Printf("(c) %d idle replicated databases (created by %d goroutines in %.1fs: %.0f/s, unix VFS %.0f/s; flushed in %.1fs):\n",
		ver.DBs, o.idleCreators, ver.CreateSecs, float64(ver.DBs)/ver.CreateSecs, float64(unix.DBs)/unix.CreateSecs, ver.FlushSecs)
	fmt.Printf("    CPU of the process per database created (and uploaded): %.2f ms replicated, %.2f ms on the unix VFS\n",
		1000*ver.CreateCPU/float64(ver.DBs), 1000*unix.CreateCPU/float64(unix.DBs))
	fmt.Printf("    S3 requests in %v of idleness: %d counted by the server, %d by the copier (%d background scans ran, examining %d spools)\n",
		o.idleWindow, ver.IdleRequests, ver.CopierIdleRequests, ver.Scans, ver.SpoolsScanned)
	open := "open"
	if o.idleClosed {
		open = "closed after their transaction"
	}
	fmt.Printf("    RSS per database, connections "+open+": %.1f KB with replication, %.1f KB on the unix VFS (SQLite's own\n"+
		"        per-connection memory): replication adds %.1f KB per idle replicated database\n",
		kb(ver.RSSOpen-ver.RSSBase), kb(unix.RSSOpen-unix.RSSBase), kb(ver.RSSOpen-ver.RSSBase)-kb(unix.RSSOpen-unix.RSSBase))
	fmt.Printf("    Go heap per database: %.1f KB with the connections "+open+" (unix VFS: %.1f KB); after they closed %.2f KB (unix VFS: %.2f KB)\n",
		kb(ver.HeapOpen-ver.HeapBase), kb(unix.HeapOpen-unix.HeapBase), kb(ver.HeapClosed-ver.HeapBase), kb(unix.HeapClosed-unix.HeapBase))
	return nil
}

// probeFS times writing a small file and renaming it over another, as the
// spool does.
func probeFS(dir string) time.Duration {
	const n = 200
	data := make([]byte, 600)
	start := time.Now()
	for range n {
		f, err := os.CreateTemp(dir, "probe.*")
		if err != nil {
			return 0
		}
		f.Write(data)
		f.Close()
		os.Rename(f.Name(), filepath.Join(dir, "probe"))
	}
	d := time.Since(start) / n
	os.Remove(filepath.Join(dir, "probe"))
	return d.Round(time.Microsecond)
}

// rss returns the resident set size after returning free memory to the OS.
func rss() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// heap returns the bytes of Go heap in use after a collection.
func heap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// runChild runs one side of (c): create VERNEUIL_S3BENCH_N databases with
// one transaction each and keep their connections open, on the verneuil
// VFS (replicated, then idle for VERNEUIL_S3BENCH_WINDOW) or on unix.
func runChild(role string) int {
	if err := child(role); err != nil {
		fmt.Fprintf(os.Stderr, "verneuil-s3bench %s: %v\n", role, err)
		return 1
	}
	return 0
}

func child(role string) error {
	if os.Getenv("VERNEUIL_S3BENCH_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 64
	}
	if p := os.Getenv("VERNEUIL_S3BENCH_CPUPROFILE"); p != "" && role == "idle-verneuil" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	dir := os.Getenv("VERNEUIL_S3BENCH_DIR")
	n, _ := strconv.Atoi(os.Getenv("VERNEUIL_S3BENCH_N"))
	window, _ := time.ParseDuration(os.Getenv("VERNEUIL_S3BENCH_WINDOW"))
	if role != "idle-verneuil" {
		window = 0 // nothing runs in the background on the unix VFS
	}
	workers, _ := strconv.Atoi(os.Getenv("VERNEUIL_S3BENCH_WORKERS"))
	closed, _ := strconv.ParseBool(os.Getenv("VERNEUIL_S3BENCH_CLOSED"))
	creators, _ := strconv.Atoi(os.Getenv("VERNEUIL_S3BENCH_CREATORS"))
	ctx := context.Background()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	vfs := "unix"
	var r *replicator.Replicator
	if role == "idle-verneuil" {
		vfs = "verneuil"
		cfg := benchConfig(dir, os.Getenv("VERNEUIL_S3BENCH_ENDPOINT"), "idle", workers)
		var err error
		if r, err = replicator.Start(ctx, cfg); err != nil {
			return err
		}
		defer r.Close(ctx)
	}
	res := idleResult{DBs: n}
	// Warm up the driver and the VFS so that their one-time costs are not
	// charged to the databases.
	warm, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "warm.db")+"?vfs="+vfs+"&_journal_mode=DELETE&_sync=OFF")
	if err != nil {
		return err
	}
	if _, err := warm.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES('x')"); err != nil {
		return err
	}
	if r != nil {
		if err := r.Flush(ctx); err != nil {
			return err
		}
	}
	res.RSSBase, res.HeapBase = rss(), heap()
	start, cpu0 := time.Now(), cpuSeconds()
	dbs := make([]*sql.DB, n)
	if err := createIdle(dir, vfs, dbs, closed, creators); err != nil {
		return err
	}
	res.CreateSecs = time.Since(start).Seconds()
	res.CreateCPU = cpuSeconds() - cpu0
	var reqs func() int64 = func() int64 { return 0 }
	var scans func() int64 = func() int64 { return 0 }
	scanned := scans
	if r != nil {
		fstart := time.Now()
		if err := r.Flush(ctx); err != nil {
			return err
		}
		res.FlushSecs = time.Since(fstart).Seconds()
		res.CreateCPU = cpuSeconds() - cpu0
		time.Sleep(3 * time.Second) // coalescing windows and stragglers
		reqs = func() int64 { return r.Stats().Requests }
		scans = func() int64 { return r.Stats().Scans }
		scanned = func() int64 { return r.Stats().SpoolsScanned }
	}
	r0, s0, x0 := reqs(), scans(), scanned()
	fmt.Println("IDLE_BEGIN")
	time.Sleep(window)
	fmt.Println("IDLE_END")
	res.IdleRequests, res.Scans, res.SpoolsScanned = reqs()-r0, scans()-s0, scanned()-x0
	res.RSSOpen, res.HeapOpen = rss(), heap()
	if p := os.Getenv("VERNEUIL_S3BENCH_HEAPPROFILE"); p != "" && r != nil {
		if f, err := os.Create(p + ".open"); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	for _, db := range dbs {
		if db == nil {
			continue
		}
		if err := db.Close(); err != nil {
			return err
		}
	}
	res.RSSClosed, res.HeapClosed = rss(), heap()
	if p := os.Getenv("VERNEUIL_S3BENCH_HEAPPROFILE"); p != "" && r != nil {
		if f, err := os.Create(p); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	if r != nil {
		time.Sleep(time.Second)
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// createIdle creates len(dbs) databases in dir on vfs, one transaction
// each, with creators goroutines; it keeps each connection open in dbs,
// or closes it after the transaction.
func createIdle(dir, vfs string, dbs []*sql.DB, closed bool, creators int) error {
	var next atomic.Int64
	errs := make(chan error, max(1, creators))
	for range max(1, creators) {
		go func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(dbs) {
					errs <- nil
					return
				}
				db, err := createOne(filepath.Join(dir, fmt.Sprintf("db%06d.db", i)), vfs, closed)
				if err != nil {
					next.Store(int64(len(dbs))) // the others stop too
					errs <- fmt.Errorf("db %d: %w", i, err)
					return
				}
				dbs[i] = db
			}
		}()
	}
	var first error
	for range max(1, creators) {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// createOne creates the database at p with one transaction and returns its
// handle, or nil after closing it when closed.
func createOne(p, vfs string, closed bool) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", "file:"+p+"?vfs="+vfs+"&_journal_mode=DELETE&_sync=OFF")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES('row')"); err != nil {
		db.Close()
		return nil, err
	}
	if closed {
		return nil, db.Close()
	}
	return db, nil
}

// cpuSeconds returns the user and system CPU time of this process.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
