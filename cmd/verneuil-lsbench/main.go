// Command verneuil-lsbench runs the same workloads through Litestream and
// through verneuil, one after the other, against one S3-compatible server on
// the loopback interface, and prints one table comparing them
// (docs/BENCHMARKS.md):
//
//	(a) one database, -rate single-row transactions a second for -duration;
//	(b) -dbs databases at -rate-b transactions a second each;
//	(c) a bulk load of one database to -bulk-mib MiB, in transactions of
//	    -rows-per-tx rows, as fast as the writer goes;
//	(d) -idle-dbs idle databases watched for -idle;
//
// then a restore of (a) and of (c) by each tool.
//
// Litestream (`litestream replicate`, installed by
// scripts/install-litestream.sh) replicates databases in WAL mode;
// verneuil replicates them in TRUNCATE mode through its VFS, in the writer
// process, with its default configuration; the tool verneuil-wal (-tools
// litestream,verneuil,verneuil-wal) is verneuil with the databases in WAL
// mode, as Litestream's, in two more columns. Writers are child processes of
// the benchmark, with synchronous=OFF for both tools. Every request either
// tool makes goes through a counting reverse proxy in front of versitygw,
// which classifies it (PUT, GET, LIST...) and counts its bytes. Replication
// lag is measured by an independent poller that reads the store directly:
// each transaction writes its sequence number into the database header
// (user_version), and the poller reads page 1 of the newest restorable state
// (verneuil: the `latest` manifest; Litestream: the newest level-0 LTX file).
//
// Usage:
//
//	go run ./cmd/verneuil-lsbench [-quick] [-only abcd] [-duration 60s] ...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the benchmark's flags.
type options struct {
	only       string
	duration   time.Duration
	rate       float64
	dbs        int
	rateB      float64
	bulkMiB    int
	rowsPerTx  int
	rowBytes   int
	idleDBs    int
	idle       time.Duration
	idleWarmup time.Duration
	settle     time.Duration
	poll       time.Duration
	sample     int
	dir        string
	tools      string
	jsonOut    string
	lagTimeout time.Duration

	fleetDBs         int
	fleetSizeGiB     float64
	fleetActiveHours float64
	fleetHosts       int
}

func main() {
	if os.Getenv("VERNEUIL_LSBENCH_ROLE") == "writer" {
		if err := runWriter(); err != nil {
			fmt.Fprintln(os.Stderr, "verneuil-lsbench writer:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	quick := flag.Bool("quick", false, "a short run (a few minutes): 10 s loads, 20 databases, a 64 MiB bulk load")
	flag.StringVar(&o.only, "only", "abcd", "workloads to run (letters among a, b, c, d)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "length of the loads (a) and (b)")
	flag.Float64Var(&o.rate, "rate", 100, "transactions a second in (a)")
	flag.IntVar(&o.dbs, "dbs", 100, "databases in (b)")
	flag.Float64Var(&o.rateB, "rate-b", 5, "transactions a second per database in (b)")
	flag.IntVar(&o.bulkMiB, "bulk-mib", 1024, "size of the bulk load (c), MiB of row data")
	flag.IntVar(&o.rowsPerTx, "rows-per-tx", 1000, "rows per transaction in (c)")
	flag.IntVar(&o.rowBytes, "row-bytes", 1000, "bytes of random data per row in (c) (rows of (a) and (b): 100)")
	flag.IntVar(&o.idleDBs, "idle-dbs", 100, "databases in (d)")
	flag.DurationVar(&o.idle, "idle", 60*time.Second, "how long (d) watches the idle databases")
	flag.DurationVar(&o.idleWarmup, "idle-warmup", 35*time.Second, "(d) starts counting this long after the databases reached the store (Litestream compacts level 0 into level 1 every 30 s)")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "requests are still counted this long after a load ends")
	flag.DurationVar(&o.poll, "poll", 100*time.Millisecond, "interval of the lag poller")
	flag.IntVar(&o.sample, "sample", 10, "databases of (b) whose lag is polled")
	flag.StringVar(&o.dir, "dir", "", "parent of the work directory (default $TMPDIR)")
	flag.StringVar(&o.tools, "tools", "litestream,verneuil", "tools to run, in this order (among litestream, verneuil, verneuil-wal: verneuil with the databases in WAL mode)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results to this file as JSON")
	flag.DurationVar(&o.lagTimeout, "lag-timeout", 10*time.Minute, "give up waiting for a load's last transaction to reach the store after this")
	flag.IntVar(&o.fleetDBs, "fleet-dbs", 10000, "cost model: databases in the fleet")
	flag.Float64Var(&o.fleetSizeGiB, "fleet-size-gib", 0.1, "cost model: size of each database, GiB")
	flag.Float64Var(&o.fleetActiveHours, "fleet-active-hours", 2, "cost model: hours a day each database is written")
	reprint := flag.String("report", "", "print the table and cost model of an earlier run's -json file (with this run's -fleet-* flags) and exit")
	flag.IntVar(&o.fleetHosts, "fleet-hosts", 1000, "cost model: processes (hosts) the fleet's databases are spread over")
	flag.Parse()
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("duration", func() { o.duration = 10 * time.Second })
		def("dbs", func() { o.dbs = 20 })
		def("bulk-mib", func() { o.bulkMiB = 64 })
		def("idle-dbs", func() { o.idleDBs = 20 })
		def("idle", func() { o.idle = 20 * time.Second })
		def("settle", func() { o.settle = 5 * time.Second })
		def("idle-warmup", func() { o.idleWarmup = 5 * time.Second })
		def("sample", func() { o.sample = 5 })
	}
	if *reprint != "" {
		if err := printReport(*reprint, o); err != nil {
			fmt.Fprintln(os.Stderr, "verneuil-lsbench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, strings.Join(os.Args, " "))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "verneuil-lsbench:", err)
		os.Exit(1)
	}
}
