package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
)

const bucket = "lsbench"

// env is what every phase shares: the S3 server, the counting proxy in
// front of it, and the work directory.
type env struct {
	o          options
	dir        string
	direct     string // the server's endpoint, for the poller
	proxied    string // the proxy's endpoint, for the tools
	proxy      *countingProxy
	litestream string // binary
}

func run(ctx context.Context, o options, command string) error {
	lsBin, err := toolBinary("litestream")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(o.dir, "verneuil-lsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	direct, stopServer, err := startVersitygw(ctx, dir)
	if err != nil {
		return err
	}
	defer stopServer()
	target, _ := url.Parse(direct)
	proxy := newCountingProxy(target)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(l)
	defer srv.Close()
	e := &env{o: o, dir: dir, direct: direct, proxied: "http://" + l.Addr().String(), proxy: proxy, litestream: lsBin}
	ver, _ := exec.Command(lsBin, "version").Output()
	rep := &report{Command: command, CPUs: runtime.NumCPU(), Litestream: strings.TrimSpace(string(ver)), Started: time.Now().UTC()}
	rep.Machine = machine()
	fmt.Printf("verneuil-lsbench: versitygw at %s behind a counting proxy at %s; %d CPUs; litestream %s\n",
		direct, e.proxied, rep.CPUs, rep.Litestream)
	tools := strings.Split(o.tools, ",")
	for _, w := range workloads(o) {
		if !strings.Contains(o.only, w.name) {
			continue
		}
		for _, tool := range tools {
			fmt.Printf("(%s) %s: %s ...\n", w.name, w.title, tool)
			res, err := e.runPhase(ctx, w, tool)
			if err != nil {
				return fmt.Errorf("(%s) %s: %w", w.name, tool, err)
			}
			res.print(os.Stdout)
			rep.Results = append(rep.Results, res)
		}
	}
	rep.printTable(os.Stdout)
	rep.printCostCheck(os.Stdout, o)
	if o.jsonOut != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// workload is one of (a)-(d).
type workload struct {
	name, title string
	n           int
	rate        float64
	duration    time.Duration
	rowsPerTx   int
	rowBytes    int
	txs         int64
	idle        bool
	restore     bool
}

func workloads(o options) []workload {
	bulkTxs := (int64(o.bulkMiB)<<20 + int64(o.rowsPerTx*o.rowBytes) - 1) / int64(o.rowsPerTx*o.rowBytes)
	return []workload{
		{name: "a", title: fmt.Sprintf("1 database, %g tx/s for %v", o.rate, o.duration), n: 1, rate: o.rate,
			duration: o.duration, rowsPerTx: 1, rowBytes: 100, restore: true},
		{name: "b", title: fmt.Sprintf("%d databases, %g tx/s each for %v", o.dbs, o.rateB, o.duration), n: o.dbs,
			rate: o.rateB, duration: o.duration, rowsPerTx: 1, rowBytes: 100},
		{name: "c", title: fmt.Sprintf("bulk load to %d MiB, %d rows of %d B per tx", o.bulkMiB, o.rowsPerTx, o.rowBytes),
			n: 1, rowsPerTx: o.rowsPerTx, rowBytes: o.rowBytes, txs: bulkTxs, restore: true},
		{name: "d", title: fmt.Sprintf("%d idle databases for %v", o.idleDBs, o.idle), n: o.idleDBs, duration: o.idle, idle: true},
	}
}

// startVersitygw starts versitygw on a free loopback port with keep-alive
// (as real S3 endpoints have) and creates the bucket; the AWS environment
// of this process and its children then points at its credentials.
func startVersitygw(ctx context.Context, dir string) (endpoint string, stop func(), err error) {
	bin, err := s3test.Binary()
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	root := filepath.Join(dir, "s3")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--access", s3test.AccessKey, "--secret", s3test.SecretKey, "--port", addr, "--keep-alive", "posix", root)
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start versitygw: %w", err)
	}
	stop = func() {
		cmd.Process.Kill() // the pid of the process we started
		cmd.Wait()
		logf.Close()
	}
	endpoint = "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := (&http.Client{Timeout: time.Second}).Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("versitygw did not answer on %s: %w", addr, err)
		}
	}
	// A CA bundle in the environment makes the AWS SDK (Litestream's too)
	// refuse a custom HTTP client; the loopback server needs none.
	os.Unsetenv("AWS_CA_BUNDLE")
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": s3test.AccessKey, "AWS_SECRET_ACCESS_KEY": s3test.SecretKey,
		"AWS_REGION": s3test.Region, "AWS_EC2_METADATA_DISABLED": "true", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": ""} {
		os.Setenv(k, v)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := s3test.Client(endpoint).CreateBucket(cctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		stop()
		return "", nil, fmt.Errorf("create bucket: %w", err)
	}
	return endpoint, stop, nil
}

// verneuilConfig is the replicator's configuration for a phase: the
// defaults, with the spool in the phase's directory and the target behind
// the proxy.
func verneuilConfig(dir, endpoint, prefix string) *config.Config {
	cfg := config.Default()
	cfg.SpoolDir = filepath.Join(dir, "spool")
	cfg.Targets = []config.Target{{URL: "s3://" + bucket + "/" + prefix, Endpoint: endpoint, Region: s3test.Region, PathStyle: true}}
	cfg.Hostname = "bench"
	cfg.LogLevel = "warn"
	return cfg
}

// phaseResult is what one tool did in one workload.
type phaseResult struct {
	Workload, Title, Tool string
	DBs                   int
	Commits               int
	Load                  time.Duration // first BEGIN → last COMMIT
	CommitLatency         dist
	Lag                   dist // commit → restorable, of the polled databases
	LagDBs                int
	Unseen                int           // commits of polled databases never seen restorable
	LastRestorable        time.Duration // last commit → restorable (slowest polled database)
	Window                time.Duration // requests were counted over this window
	Requests              counts
	CPUWriter, CPURepl    time.Duration // of the writer process and, for Litestream, of `litestream replicate`
	RSSWriter, RSSRepl    int64         // at the end of the window
	DBBytes               int64         // size of database 0 at the end
	StoredBytes           int64         // under the phase's prefix once the tools stopped
	StoredObjects         int
	Restore               *restoreResult `json:",omitempty"`
	Notes                 []string       `json:",omitempty"`
}

// restoreResult is one restore of database 0.
type restoreResult struct {
	Time       time.Duration // through the proxy
	DirectTime time.Duration // straight from the server
	// verneuil: every object under the workload's prefix fetched straight
	// from the server, 8 GETs at a time, and discarded.
	RawTime    time.Duration
	RawObjects int
	RawBytes   int64
	Requests   counts
	Bytes      int64
	Check      string // what the restored database holds, or what is wrong with it
}

func (e *env) runPhase(ctx context.Context, w workload, tool string) (*phaseResult, error) {
	res := &phaseResult{Workload: w.name, Title: w.title, Tool: tool, DBs: w.n}
	dir := filepath.Join(e.dir, tool+"-"+w.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	prefix := tool + "/" + w.name
	paths := make([]string, w.n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("db%05d.db", i))
	}
	spec := writerSpec{Tool: tool, DBs: paths, Rate: w.rate, Duration: w.duration, RowsPerTx: w.rowsPerTx,
		RowBytes: w.rowBytes, Txs: w.txs, Idle: w.idle, Records: filepath.Join(dir, "records.json")}

	var pr probe
	var lsConfig string
	switch tool {
	case toolVerneuil, toolVerneuilWAL:
		cfg := verneuilConfig(dir, e.proxied, prefix)
		spec.Config = string(cfg.JSON())
		keys := make([]string, w.n)
		var err error
		for i, p := range paths {
			if _, keys[i], err = replicator.ReplicaName(cfg, p, ""); err != nil {
				return nil, err
			}
		}
		direct := verneuilConfig(dir, e.direct, prefix)
		stores, err := replicator.OpenTargets(ctx, direct)
		if err != nil {
			return nil, err
		}
		defer stores[0].Close()
		pr = &verneuilProbe{store: stores[0], keys: keys}
	case toolLitestream:
		prefixes := make([]string, w.n)
		for i := range prefixes {
			prefixes[i] = fmt.Sprintf("%s/db%05d", prefix, i)
		}
		lsConfig = filepath.Join(dir, "litestream.yml")
		if err := os.WriteFile(lsConfig, []byte(litestreamConfig(e.proxied, bucket, paths, prefixes)), 0o600); err != nil {
			return nil, err
		}
		pr = newLitestreamProbe(s3test.Client(e.direct), bucket, prefixes)
	default:
		return nil, fmt.Errorf("unknown tool %q", tool)
	}

	wr, err := startWriter(spec, filepath.Join(dir, "writer.log"))
	if err != nil {
		return nil, err
	}
	writerUp := true
	defer func() {
		if writerUp {
			wr.stop(2 * time.Minute)
		}
	}()
	if err := wr.expect(ctx, "READY", 5*time.Minute); err != nil {
		return nil, withLog(err, filepath.Join(dir, "writer.log"))
	}
	var ls *litestreamProc
	if tool == toolLitestream {
		if ls, err = startLitestream(e.litestream, lsConfig, filepath.Join(dir, "litestream.log")); err != nil {
			return nil, err
		}
		defer func() {
			if ls != nil {
				ls.stop(time.Minute)
			}
		}()
	}

	// Poll every database of a small workload, a sample of a large one;
	// the idle workload only needs to see every database replicated once.
	polled := make([]int, 0, w.n)
	interval := e.o.poll
	switch {
	case w.idle:
		for i := range w.n {
			polled = append(polled, i)
		}
		interval = time.Second
	case w.n > e.o.sample:
		for i := range e.o.sample {
			polled = append(polled, i*w.n/e.o.sample)
		}
	default:
		for i := range w.n {
			polled = append(polled, i)
		}
	}
	pl := newPoller(pr, polled, interval)
	pctx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	go func() { defer close(pollDone); pl.run(pctx) }()
	defer func() { stopPoll(); <-pollDone }()
	if err := waitFor(ctx, 3*time.Minute, func() bool { return pl.reached(nil) || ls.exited() }); err != nil || ls.exited() {
		n, last := pl.errors()
		return nil, withLog(fmt.Errorf("databases never appeared in the store (poller: %d errors, last %v): %v", n, last, err),
			filepath.Join(dir, "litestream.log"))
	}
	// Let the initial uploads finish before counting.
	warmup := 3 * time.Second
	if w.idle {
		warmup = max(warmup, e.o.idleWarmup)
	}
	if err := sleep(ctx, warmup); err != nil {
		return nil, err
	}

	pids := []int{wr.cmd.Process.Pid}
	if ls != nil {
		pids = append(pids, ls.cmd.Process.Pid)
	}
	before := make([]procSample, len(pids))
	for i, pid := range pids {
		if before[i], err = readProc(pid); err != nil {
			return nil, err
		}
	}
	c0 := e.proxy.snapshot()
	start := time.Now()
	if err := wr.send("GO"); err != nil {
		return nil, err
	}
	if err := wr.expect(ctx, "DONE", 2*time.Hour); err != nil {
		return nil, withLog(err, filepath.Join(dir, "writer.log"))
	}
	loadEnd := time.Now()
	var recs []commitRecord
	if data, err := os.ReadFile(spec.Records); err != nil {
		return nil, err
	} else if err := json.Unmarshal(data, &recs); err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	want := map[int]int64{}
	for _, r := range recs {
		want[r.DB] = max(want[r.DB], r.Seq)
	}
	if err := waitFor(ctx, e.o.lagTimeout, func() bool { return pl.reached(want) }); err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("not every last transaction reached the store within %v", e.o.lagTimeout))
	}
	if !w.idle {
		if err := sleepUntil(ctx, loadEnd.Add(e.o.settle)); err != nil {
			return nil, err
		}
	}
	res.Window = time.Since(start)
	res.Requests = e.proxy.snapshot().sub(c0)
	for i, pid := range pids {
		s, err := readProc(pid)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			res.CPUWriter, res.RSSWriter = s.CPU-before[i].CPU, s.RSS
		} else {
			res.CPURepl, res.RSSRepl = s.CPU-before[i].CPU, s.RSS
		}
	}
	if n, last := pl.errors(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("poller: %d errors, last: %v", n, last))
	}
	stopPoll()
	<-pollDone

	// Results from the records.
	res.Commits = len(recs)
	if len(recs) > 0 {
		first, last := recs[0].Begin, recs[0].Commit
		lat := make([]time.Duration, len(recs))
		for i, r := range recs {
			first, last = min(first, r.Begin), max(last, r.Commit)
			lat[i] = time.Duration(r.Commit - r.Begin)
		}
		res.Load = time.Duration(last - first)
		res.CommitLatency = summarise(lat)
		lags, unseen := pl.lags(recs)
		res.Lag, res.Unseen, res.LagDBs = summarise(lags), unseen, len(polled)
		lastOf := map[int]commitRecord{}
		for _, r := range recs {
			if r.Seq > lastOf[r.DB].Seq {
				lastOf[r.DB] = r
			}
		}
		var finals []commitRecord
		for _, d := range polled {
			if r, ok := lastOf[d]; ok {
				finals = append(finals, r)
			}
		}
		if fl, _ := pl.lags(finals); len(fl) > 0 {
			res.LastRestorable = summarise(fl).Max
		}
	}
	if fi, err := os.Stat(paths[0]); err == nil {
		res.DBBytes = fi.Size()
	}

	// Stop the tools: the writer (which drains verneuil's replicator),
	// then Litestream.
	writerUp = false
	if err := wr.stop(5 * time.Minute); err != nil {
		return nil, withLog(fmt.Errorf("writer: %w", err), filepath.Join(dir, "writer.log"))
	}
	if ls != nil {
		if err := ls.stop(time.Minute); err != nil {
			res.Notes = append(res.Notes, err.Error())
		}
		ls = nil
	}
	if res.StoredObjects, res.StoredBytes, err = stored(ctx, s3test.Client(e.direct), prefix+"/"); err != nil {
		return nil, err
	}
	if w.restore {
		if res.Restore, err = e.restore(ctx, tool, dir, paths[0], prefix, want[0]); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	return res, nil
}

// stored counts the objects under prefix and their bytes.
func stored(ctx context.Context, client *s3.Client, prefix string) (n int, bytes int64, err error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
	for pg := s3.NewListObjectsV2Paginator(client, in); pg.HasMorePages(); {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range out.Contents {
			n++
			bytes += aws.ToInt64(o.Size)
		}
	}
	return n, bytes, nil
}

// restore restores database 0 with the tool twice: through the proxy,
// counted, timed and checked; then straight from the server, timed (the
// proxy adds a little to every request, and verneuil makes many more).
func (e *env) restore(ctx context.Context, tool, dir, db, prefix string, wantSeq int64) (*restoreResult, error) {
	out := filepath.Join(dir, "restored.db")
	defer os.Remove(out)
	c0 := e.proxy.snapshot()
	start := time.Now()
	if err := e.restoreOnce(ctx, tool, dir, db, prefix, e.proxied, out); err != nil {
		return nil, err
	}
	r := &restoreResult{Time: time.Since(start), Requests: e.proxy.snapshot().sub(c0)}
	if fi, err := os.Stat(out); err == nil {
		r.Bytes = fi.Size()
	}
	r.Check = checkRestored(out, wantSeq)
	if err := os.Remove(out); err != nil {
		return nil, err
	}
	start = time.Now()
	if err := e.restoreOnce(ctx, tool, dir, db, prefix, e.direct, out); err != nil {
		return nil, err
	}
	r.DirectTime = time.Since(start)
	if isVerneuil(tool) {
		// The baseline restore throughput is held to: every object the
		// database's replica is made of, fetched as fast as GETs go.
		start = time.Now()
		var err error
		if r.RawObjects, r.RawBytes, err = rawGet(ctx, s3test.Client(e.direct), prefix+"/", 8); err != nil {
			return nil, err
		}
		r.RawTime = time.Since(start)
	}
	return r, nil
}

// rawGet fetches every object under prefix, parallel at a time, and
// discards them.
func rawGet(ctx context.Context, client *s3.Client, prefix string, parallel int) (n int, bytes int64, err error) {
	var keys []string
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
	for pg := s3.NewListObjectsV2Paginator(client, in); pg.HasMorePages(); {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	var mu sync.Mutex
	var firstErr error
	work := make(chan string)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
				var m int64
				if err == nil {
					m, err = io.Copy(io.Discard, out.Body)
					out.Body.Close()
				}
				mu.Lock()
				bytes += m
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("get %s: %w", k, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	return len(keys), bytes, firstErr
}

// restoreOnce restores the newest state of db (replicated under prefix) to
// out, from endpoint, as a user would: `litestream restore`, or verneuil's
// restore library (what `verneuilctl restore` runs).
func (e *env) restoreOnce(ctx context.Context, tool, dir, db, prefix, endpoint, out string) error {
	if tool == toolLitestream {
		cfg := filepath.Join(dir, "litestream-restore.yml")
		text := litestreamConfig(endpoint, bucket, []string{db}, []string{prefix + "/" + filepath.Base(strings.TrimSuffix(db, ".db"))})
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			return err
		}
		return litestreamRestore(ctx, e.litestream, cfg, db, out)
	}
	cfg := verneuilConfig(dir, endpoint, prefix)
	stores, err := replicator.OpenTargets(ctx, cfg)
	if err != nil {
		return err
	}
	defer stores[0].Close()
	_, key, err := replicator.ReplicaName(cfg, db, "")
	if err != nil {
		return err
	}
	m, err := restore.Latest(ctx, stores[0], key)
	if err != nil {
		return err
	}
	return restore.ToFile(ctx, stores[0], m, out)
}

// checkRestored says whether a restored database is intact and holds the
// load's last transaction.
func checkRestored(path string, wantSeq int64) string {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return "open: " + err.Error()
	}
	defer db.Close()
	var ok string
	var uv, rows int64
	if err := db.QueryRow("PRAGMA quick_check").Scan(&ok); err != nil {
		return "quick_check: " + err.Error()
	}
	if err := db.QueryRow("PRAGMA user_version").Scan(&uv); err != nil {
		return err.Error()
	}
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&rows); err != nil {
		return err.Error()
	}
	if ok != "ok" || uv != wantSeq {
		return fmt.Sprintf("BAD: quick_check %q, transaction %d of %d, %d rows", ok, uv, wantSeq, rows)
	}
	return fmt.Sprintf("ok: all %d transactions, %d rows", uv, rows)
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func sleepUntil(ctx context.Context, t time.Time) error { return sleep(ctx, time.Until(t)) }

// withLog adds the tail of a child's log to err.
func withLog(err error, path string) error {
	data, rerr := os.ReadFile(path)
	if rerr != nil || len(data) == 0 {
		return err
	}
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return errors.Join(err, fmt.Errorf("log %s: %s", path, data))
}

// machine describes the CPU and memory of this machine.
func machine() string {
	var model, mem string
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		mem = strings.Join(strings.Fields(line)[1:], " ")
	}
	return fmt.Sprintf("%s, %d CPUs, MemTotal %s, %s/%s", model, runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH)
}
