// Command mattnsuite runs the test suite of github.com/mattn/go-sqlite3
// (the SQLite driver the library is built on) twice from one test binary:
// once with SQLite's unix VFS as the default, once with verneuil as the
// default VFS ("make_default": true) replicating to a local file://
// target, and fails when the two passes' outcomes differ (failing, skipped
// or run tests) or when a replica differs from its database.
//
// It copies the driver's package from the module cache (the version
// go.mod requires) into WORK/src, adds testdata/zz_verneuil_harness_test.go
// (an external test package that starts verneuil in TestMain: the driver's
// in-package tests cannot import verneuil, which imports the driver), joins
// the copy and this module in WORK/go.work, builds the test binary once and
// runs it under go tool test2json in each pass. After the verneuil pass it
// counts the target's manifests and restores every replica whose database
// is still there or was kept by the harness (it hard-links each file the
// suite creates under TMPDIR, so that its last content outlives the test
// that removes it), comparing them byte for byte.
//
//	go run ./tests/mattnsuite [-tags T] [-race] [-run REGEXP] [-shuffle on|SEED]
//	                          [-config JSON] [-s3 [-s3-faults RATE]] [-outage] [-no-keep]
//	                          [-work DIR] [-sequential]
//
// -outage keeps the verneuil pass's target missing while the suite runs
// (every write must still succeed, the final flush must fail), then
// creates it, runs verneuilctl flush and checks the replicas.
//
// docs/TESTING.md (mattn/go-sqlite3's suite) has the results and timings.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

// passTmpDir is the directory, in a pass's own directory, that is the
// suite's TMPDIR (where it creates its databases).
const passTmpDir = "tmp"

// harnessName is the harness's file name in the copy: "zz" sorts it last,
// so the driver's own files and tests keep their order.
const harnessName = "zz_verneuil_harness_test.go"

//go:embed testdata/zz_verneuil_harness_test.go
var harnessSource []byte

// s3Bucket is the bucket of -s3.
const s3Bucket = "mattn-suite"

// passGrace is how long a pass may run past -timeout: the harness's final
// flush and close (bounded at 2 minutes each) and the process's exit.
var passGrace = 5 * time.Minute

// replicaHost is the hostname of the verneuil pass's replica names.
const replicaHost = "mattn-suite"

type options struct {
	gobin      string
	work       string
	tags       string
	run        string
	timeout    time.Duration
	sequential bool
	outage     bool
	race       bool
	noKeep     bool
	shuffle    string
	extra      string
	s3         bool
	s3Faults   float64
}

func main() {
	var o options
	flag.StringVar(&o.gobin, "go", envOr("GO", "go"), "the go command")
	flag.StringVar(&o.work, "work", "", "working directory (default <repo>/.cache/mattn-suite; keep it fixed: a new one rebuilds SQLite)")
	flag.StringVar(&o.tags, "tags", "", "build tags for the driver, e.g. \"sqlite_vtable sqlite_preupdate_hook\"")
	flag.StringVar(&o.run, "run", "", "run only the tests matching this regular expression (go test -run)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit of each pass (go test -timeout)")
	flag.BoolVar(&o.sequential, "sequential", false, "run the two passes one after the other (default: at the same time)")
	flag.BoolVar(&o.race, "race", false, "build the test binary with the race detector (driver, verneuil and tests)")
	flag.StringVar(&o.shuffle, "shuffle", "off", "\"on\" or a seed: run the tests in a random order, the same in both passes (go test -shuffle)")
	flag.StringVar(&o.extra, "config", "", "more keys of the verneuil pass's configuration, as a JSON object, e.g. '{\"flush_on_close\": true}'")
	flag.BoolVar(&o.s3, "s3", false, "replicate the verneuil pass to a loopback S3 server (versitygw: scripts/install-s3-server.sh) instead of a local directory")
	flag.Float64Var(&o.s3Faults, "s3-faults", 0, "with -s3: this fraction of the verneuil pass's requests (0-1) get a 503, a 500 or a connection reset (before or after the server handled them) from a proxy; off for the checks")
	flag.BoolVar(&o.noKeep, "no-keep", false, "do not hard-link the files the suite creates (removed databases' inodes are then reused, as without the harness; only databases still in place are compared)")
	flag.BoolVar(&o.outage, "outage", false, "keep the verneuil pass's target unavailable during the suite, then create it, run verneuilctl flush and check the replicas")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mattn-suite: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := o.validate(); err != nil {
		logf("%v", err)
		os.Exit(2)
	}
	code, err := run(context.Background(), o)
	if err != nil {
		logf("%v", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

// validate checks the flags together, and replaces -shuffle on by a
// seed, so that both passes run the tests in the same order.
func (o *options) validate() error {
	if _, err := extraConfig(o.extra); err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	if o.s3Faults < 0 || o.s3Faults >= 1 || (o.s3Faults > 0 && !o.s3) {
		return fmt.Errorf("-s3-faults %v: want a fraction in [0, 1), with -s3", o.s3Faults)
	}
	if o.s3 && o.outage {
		return errors.New("-outage needs the local target: not with -s3")
	}
	if o.timeout <= 0 {
		return fmt.Errorf("-timeout %s: want a positive duration", o.timeout)
	}
	switch o.shuffle {
	case "off":
	case "on":
		o.shuffle = strconv.FormatInt(time.Now().UnixNano(), 10)
	default:
		if _, err := strconv.ParseInt(o.shuffle, 10, 64); err != nil {
			return fmt.Errorf("-shuffle %q: want off, on or an integer seed", o.shuffle)
		}
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mattn-suite: "+format+"\n", args...)
}

// pass is one run of the suite's binary.
type pass struct {
	mode    string // "plain" or "verneuil"
	dir     string // WORK/MODE: tmp/, wd/, keep/, spool/, store/, events.json, report.json
	outage  bool   // the target does not exist while the suite runs
	keep    bool   // the harness hard-links the files the suite creates
	extra   string // more configuration keys (-config)
	s3      string // endpoint of the S3 server replicated to ("": the local target)
	faults  bool   // s3 is a proxy injecting faults: the final flush may fail
	elapsed time.Duration
	result  *passResult
	report  harnessReport
	err     error
}

// harnessReport mirrors the harness's report (testdata).
type harnessReport struct {
	Mode       string   `json:"mode"`
	Probe      string   `json:"probe"`
	ProbeError string   `json:"probe_error"`
	ProbePath  string   `json:"probe_path"`
	Kept       int      `json:"kept"`
	WatchDirs  int      `json:"watch_dirs"`
	WatchError []string `json:"watch_errors"`
	StartError string   `json:"start_error"`
	FlushError string   `json:"flush_error"`
	CloseError string   `json:"close_error"`
	ExitCode   int      `json:"exit_code"`
	complete   bool     // read from the harness (not made up for a missing one)
}

// run returns 0 when the passes agree and replication is proven, 1 when
// they do not, and 2 with an error when the suite could not be run.
func run(ctx context.Context, o options) (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return 2, err
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return 2, err
	}
	if o.work == "" {
		o.work = filepath.Join(root, ".cache", "mattn-suite")
	}
	if o.work, err = filepath.Abs(o.work); err != nil {
		return 2, err
	}
	lock, err := lockWork(o.work)
	if err != nil {
		return 2, err
	}
	defer lock.Close()

	modDir, version, err := locateDriver(o.gobin, root)
	if err != nil {
		return 2, err
	}
	logf("%s %s (tags %q, race %v, shuffle %s, extra configuration %q, s3 %v), work directory %s",
		driverModule, version, o.tags, o.race, o.shuffle, o.extra, o.s3, o.work)
	src := filepath.Join(o.work, "src")
	gowork, err := prepareSource(modDir, src, root, harnessSource)
	if err != nil {
		return 2, err
	}
	bin := filepath.Join(o.work, "mattn.test")
	start := time.Now()
	args := []string{"test", "-c", "-o", bin}
	if o.tags != "" {
		args = append(args, "-tags", o.tags)
	}
	if o.race {
		args = append(args, "-race")
	}
	env := []string{"GOWORK=" + gowork, "GOFLAGS=" + workspaceGoflags(os.Getenv("GOFLAGS"))}
	if _, err := goCmd(o.gobin, src, env, append(args, ".")...); err != nil {
		return 2, fmt.Errorf("build the suite: %w", err)
	}
	logf("built the test binary in %.1f s", time.Since(start).Seconds())

	passes := []*pass{
		{mode: "plain", dir: filepath.Join(o.work, "plain"), keep: !o.noKeep},
		{mode: "verneuil", dir: filepath.Join(o.work, "verneuil"), keep: !o.noKeep, outage: o.outage, extra: o.extra},
	}
	var proxy *faultProxy
	if o.s3 {
		dir := filepath.Join(o.work, "s3")
		if err := os.RemoveAll(dir); err != nil {
			return 2, err
		}
		// Exports the server's AWS_* credentials, which the passes inherit.
		srv, err := s3test.StartServer(ctx, dir, s3Bucket)
		if err != nil {
			return 2, err
		}
		defer func() {
			logf("S3 server %s: %d requests", srv.Endpoint, srv.Requests.Load())
			srv.Stop()
		}()
		passes[1].s3 = srv.Endpoint
		if o.s3Faults > 0 {
			if proxy, err = startFaultProxy(srv.Endpoint, o.s3Faults, uint64(time.Now().UnixNano())); err != nil {
				return 2, err
			}
			defer proxy.stop()
			passes[1].s3, passes[1].faults = proxy.URL, true
		}
	}
	var wg sync.WaitGroup
	for _, p := range passes {
		if o.sequential {
			p.run(ctx, o, bin)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, o, bin)
		}()
	}
	wg.Wait()
	if proxy != nil {
		// The checks that follow read the store without faults.
		proxy.setRate(0)
		logf("fault proxy: %d requests; injected %v", proxy.requests.Load(), proxy.injected())
	}
	for _, p := range passes {
		if p.err != nil {
			return 2, fmt.Errorf("%s pass: %w", p.mode, p.err)
		}
		logf("%-8s pass: %5.1f s, %s; package %s", p.mode, p.elapsed.Seconds(), p.result.counts(), orNone(p.result.Package))
		if failed := p.result.with(outcomeFail); len(failed) > 0 {
			logf("%-8s pass: failing: %s", p.mode, strings.Join(failed, " "))
		}
	}
	var earlier []string
	switch vern := passes[1]; {
	case o.outage:
		earlier = catchUp(o.gobin, root, vern)
	case !vern.report.complete:
		// The binary died before the harness's final flush: what the
		// suite committed must still be in the spool.
		logf("verneuil pass: the test binary ended without its harness report; uploading its spool with verneuilctl flush")
		earlier = drainSpool(o.gobin, root, vern, false)
	case vern.faults && (vern.report.FlushError != "" || vern.report.CloseError != ""):
		// A flush gives up on a request after a few failed attempts, and
		// says so; what it did not upload must still be in the spool.
		first, _, _ := strings.Cut(vern.report.FlushError+vern.report.CloseError, "\n")
		logf("verneuil pass: the final flush failed under faults (%s); uploading the spool with verneuilctl flush, faults off", shorten(first, 300))
		earlier = drainSpool(o.gobin, root, vern, false)
	}
	return judge(ctx, passes[0], passes[1], o.run == "" && !o.noKeep, earlier...), nil
}

func orNone(s string) string {
	if s == "" {
		return "(no result)"
	}
	return s
}

// config is the verneuil pass's configuration.
func (p *pass) config() string {
	cfg := map[string]any{
		"spool_dir":    filepath.Join(p.dir, "spool"),
		"make_default": true,
		"targets":      []map[string]any{{"url": config.FileURL(filepath.Join(p.dir, "store"))}},
		"hostname":     replicaHost,
		"cache_dir":    filepath.Join(p.dir, "cache"),
	}
	if p.s3 != "" {
		cfg["targets"] = []map[string]any{{"url": "s3://" + s3Bucket + "/replicas", "endpoint": p.s3,
			"region": s3test.Region, "path_style": true}}
	}
	if p.outage {
		// Fail the harness's final flush soon: the target is missing.
		cfg["flush_timeout"] = "3s"
	}
	extra, _ := extraConfig(p.extra) // checked by main
	for k, v := range extra {
		cfg[k] = v
	}
	data, _ := json.Marshal(cfg)
	return string(data)
}

// openTarget opens the verneuil pass's target as its configuration
// names it.
func (p *pass) openTarget(ctx context.Context) (blob.Store, error) {
	cfg, err := config.Load(p.config())
	if err != nil {
		return nil, err
	}
	stores, err := replicator.OpenTargets(ctx, cfg)
	if err != nil {
		return nil, err
	}
	for _, s := range stores[1:] {
		s.Close()
	}
	return stores[0], nil
}

// extraConfig parses -config: a JSON object whose keys are added to the
// verneuil pass's configuration (and checked by verneuil.Start with it).
// The keys that place the pass's files and make verneuil the default are
// the program's.
func extraConfig(spec string) (map[string]any, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(spec), &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	for _, k := range []string{"spool_dir", "make_default", "targets", "hostname", "cache_dir", "names"} {
		if _, ok := m[k]; ok {
			return nil, fmt.Errorf("%q is set by mattn-suite", k)
		}
	}
	return m, nil
}

// run runs the test binary once in p's mode, under go tool test2json.
func (p *pass) run(ctx context.Context, o options, bin string) {
	p.err = p.runErr(ctx, o, bin)
}

func (p *pass) runErr(ctx context.Context, o options, bin string) error {
	if err := os.RemoveAll(p.dir); err != nil {
		return err
	}
	// wd is the tests' working directory, where some of them create
	// databases: one per pass, as the passes run at the same time.
	dirs := []string{passTmpDir, "wd", "keep", "spool", "cache"}
	if !p.outage && p.s3 == "" {
		dirs = append(dirs, "store")
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o700); err != nil {
			return err
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VERNEUIL_") || strings.HasPrefix(kv, "TMPDIR=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"TMPDIR="+filepath.Join(p.dir, passTmpDir),
		"VERNEUIL_MATTN_MODE="+p.mode,
		"VERNEUIL_MATTN_REPORT="+filepath.Join(p.dir, "report.json"),
		"VERNEUIL_HOME="+filepath.Join(p.dir, "home"),
	)
	if p.keep {
		env = append(env, "VERNEUIL_MATTN_KEEP="+filepath.Join(p.dir, "keep"))
	}
	if p.mode == "verneuil" {
		env = append(env, "VERNEUIL_CONFIG="+p.config())
	}
	args := []string{"tool", "test2json", "-p", driverModule, "-t", bin,
		"-test.v=test2json", "-test.count=1", "-test.shuffle=" + o.shuffle,
		"-test.paniconexit0", "-test.timeout=" + o.timeout.String()}
	if o.run != "" {
		args = append(args, "-test.run="+o.run)
	}
	events, err := os.Create(filepath.Join(p.dir, "events.json"))
	if err != nil {
		return err
	}
	defer events.Close()
	// -test.timeout bounds the tests, not the harness's flush and close
	// after them: past this bound the pass's process group (test2json and
	// the test binary) is killed.
	ctx, cancel := context.WithTimeout(ctx, o.timeout+passGrace)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.gobin, args...)
	cmd.Dir = filepath.Join(p.dir, "wd")
	cmd.Env = env
	cmd.Stdout = events
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	p.elapsed = time.Since(start)
	if ctx.Err() != nil {
		logf("%s pass: killed after %s (-timeout %s plus %s for the harness)", p.mode, p.elapsed.Round(time.Second), o.timeout, passGrace)
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) && ctx.Err() == nil {
		return fmt.Errorf("go tool test2json: %w", runErr)
	}
	if _, err := events.Seek(0, 0); err != nil {
		return err
	}
	if p.result, err = parseEvents(events); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(p.dir, "report.json"))
	if err != nil {
		// The binary died before TestMain returned: the outcomes say how.
		p.report = harnessReport{Mode: p.mode, StartError: "no harness report: " + err.Error(), ExitCode: -1}
		return nil
	}
	if err := json.Unmarshal(data, &p.report); err != nil {
		return fmt.Errorf("harness report: %w", err)
	}
	p.report.complete = true
	return nil
}
