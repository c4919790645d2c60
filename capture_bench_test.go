package verneuil_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

// BenchmarkLargeTransaction measures one transaction of
// VERNEUIL_LARGE_TXN_MB megabytes (default 200) through the unix VFS and
// through verneuil (replication on to a local target): the time of COMMIT,
// of the whole transaction, and the peak RSS of the process. Each VFS runs
// in a child process of its own so that peak RSS is its own:
//
//	go test -run '^$' -bench BenchmarkLargeTransaction -benchtime 1x .
func BenchmarkLargeTransaction(b *testing.B) {
	if spec := os.Getenv("VERNEUIL_LARGE_TXN_CHILD"); spec != "" {
		largeTxnChild(b, spec)
		return
	}
	mb := 200
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_LARGE_TXN_MB")); err == nil && v > 0 {
		mb = v
	}
	for range b.N {
		for _, vfs := range []string{"unix", "verneuil"} {
			cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkLargeTransaction$", "-test.benchtime=1x")
			cmd.Env = append(os.Environ(), fmt.Sprintf("VERNEUIL_LARGE_TXN_CHILD=%s:%d", vfs, mb))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				b.Fatalf("%s: %v\n%s", vfs, err, out.String())
			}
			rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss >> 10
			var line string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "largetxn ") {
					line = strings.TrimPrefix(l, "largetxn ")
				}
			}
			if line == "" {
				b.Fatalf("%s: no result\n%s", vfs, out.String())
			}
			b.Logf("%d MB transaction, %-8s %s, peak RSS %d MiB", mb, vfs, line, rss)
		}
	}
}

func largeTxnChild(b *testing.B, spec string) {
	vfs, mbs, _ := strings.Cut(spec, ":")
	mb, _ := strconv.Atoi(mbs)
	dir := b.TempDir()
	startLongReplicator(b, dir)
	path := filepath.Join(dir, "large.db")
	db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=%s&_journal_mode=DELETE", path, vfs))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	mustExec(b, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	start := time.Now()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for range mb {
		if _, err := tx.Exec("INSERT INTO t(v) VALUES(randomblob(1048576))"); err != nil {
			b.Fatal(err)
		}
	}
	commit := time.Now()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	end := time.Now()
	fmt.Printf("largetxn commit %.2f s, transaction %.2f s\n", end.Sub(commit).Seconds(), end.Sub(start).Seconds())
}

// BenchmarkFirstCaptureStall measures how long a writer committing every
// 50 ms (through unix, busy_timeout 10 s) waits while another connection
// of the process runs the first read transaction on a database of
// VERNEUIL_STALL_DB_MB megabytes (default 1024) written behind verneuil's
// back: through verneuil that read's end captures the whole file (a
// rescan), through unix it is a plain read. It prints the writer's
// longest commit in both cases:
//
//	go test -run '^$' -bench BenchmarkFirstCaptureStall -benchtime 1x .
func BenchmarkFirstCaptureStall(b *testing.B) {
	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_STALL_DB_MB")); err == nil && v > 0 {
		mb = v
	}
	startLongReplicator(b, b.TempDir())
	for range b.N {
		for _, vfs := range []string{"unix", "verneuil"} {
			path := filepath.Join(b.TempDir(), "stall.db")
			w, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=DELETE&_busy_timeout=10000")
			if err != nil {
				b.Fatal(err)
			}
			w.SetMaxOpenConns(1)
			mustExec(b, w, "CREATE TABLE big(v BLOB)")
			mustExec(b, w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
			for i := 0; i < mb; i += 64 {
				mustExec(b, w, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?) INSERT INTO big(v) SELECT randomblob(1048576) FROM s", min(64, mb-i))
			}
			stop := make(chan struct{})
			worst := make(chan time.Duration)
			go func() {
				var longest time.Duration
				for {
					select {
					case <-stop:
						worst <- longest
						return
					case <-time.After(50 * time.Millisecond):
					}
					t0 := time.Now()
					if _, err := w.Exec("INSERT INTO t(v) VALUES(randomblob(100))"); err != nil {
						b.Error(err)
					}
					longest = max(longest, time.Since(t0))
				}
			}()
			time.Sleep(300 * time.Millisecond)
			r, err := sql.Open("sqlite3", "file:"+path+"?vfs="+vfs+"&_busy_timeout=10000")
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			var n int
			if err := r.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
				b.Fatal(err)
			}
			read := time.Since(t0)
			time.Sleep(300 * time.Millisecond)
			close(stop)
			longest := <-worst
			r.Close()
			w.Close()
			b.Logf("%d MiB database, first read through %-8s took %v; concurrent writer's longest commit %v", mb, vfs, read.Round(time.Millisecond), longest.Round(time.Millisecond))
		}
	}
}

// BenchmarkCommitRescanStall measures how long writers wait when the
// first capture of a database of VERNEUIL_STALL_DB_MB megabytes (default
// 1024), written behind verneuil's back, is a commit: two writers through
// the VFS under test commit every 50 ms (busy_timeout 10 s) for
// VERNEUIL_STALL_SECONDS (default 8); through verneuil the first commit
// finds the file's state unknown and rescans it. It prints the longest
// commit of either writer, through unix and through verneuil, the longest
// while the sliced copy read the file (verneuil), and how long the flush
// that follows took (it uploads the whole file):
//
//	go test -run '^$' -bench BenchmarkCommitRescanStall -benchtime 1x .
func BenchmarkCommitRescanStall(b *testing.B) {
	mb, secs := 1024, 8
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_STALL_DB_MB")); err == nil && v > 0 {
		mb = v
	}
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_STALL_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	startLongReplicator(b, b.TempDir())
	for range b.N {
		for _, vfs := range []string{"unix", "verneuil"} {
			path := filepath.Join(b.TempDir(), "stall.db")
			w, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=DELETE")
			if err != nil {
				b.Fatal(err)
			}
			mustExec(b, w, "CREATE TABLE big(v BLOB)")
			mustExec(b, w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
			for i := 0; i < mb; i += 64 {
				mustExec(b, w, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?) INSERT INTO big(v) SELECT randomblob(1048576) FROM s", min(64, mb-i))
			}
			w.Close()
			// The longest commit overall, and while the sliced copy read
			// the file (slice holds counted since the writer's last commit).
			worst, worstCopying := make(chan time.Duration, 2), make(chan time.Duration, 2)
			var dbs []*sql.DB
			for range 2 {
				db, err := sql.Open("sqlite3", "file:"+path+"?vfs="+vfs+"&_journal_mode=DELETE&_busy_timeout=10000")
				if err != nil {
					b.Fatal(err)
				}
				db.SetMaxOpenConns(1)
				dbs = append(dbs, db)
				go func() {
					var longest, copying time.Duration
					holds := sqlite3vfs.ReadStats().SliceHolds
					for end := time.Now().Add(time.Duration(secs) * time.Second); time.Now().Before(end); {
						t0 := time.Now()
						if _, err := db.Exec("INSERT INTO t(v) VALUES(randomblob(100))"); err != nil {
							b.Error(err)
						}
						d := time.Since(t0)
						longest = max(longest, d)
						if h := sqlite3vfs.ReadStats().SliceHolds; h != holds {
							copying, holds = max(copying, d), h
						}
						time.Sleep(50 * time.Millisecond)
					}
					worst <- longest
					worstCopying <- copying
				}()
			}
			longest, copying := max(<-worst, <-worst), max(<-worstCopying, <-worstCopying)
			flush := "-"
			if vfs == "verneuil" {
				t0 := time.Now()
				var res string
				err := dbs[0].QueryRow("PRAGMA verneuil_flush").Scan(&res)
				flush = time.Since(t0).Round(time.Millisecond).String()
				if err != nil { // a slow upload of the whole file (flush timeout)
					flush += ": " + err.Error()
				}
			}
			for _, db := range dbs {
				db.Close()
			}
			b.Logf("%d MiB database, first capture a commit, writers through %-8s: longest commit %v, during the sliced copy %v (flush after %s)",
				mb, vfs, longest.Round(time.Millisecond), copying.Round(time.Millisecond), flush)
		}
	}
}

// startLongReplicator starts replication to a local target in dir and
// closes it at the end of the benchmark, with time to upload large
// versions on a busy machine. It returns the replicator.
func startLongReplicator(b *testing.B, dir string) *replicator.Replicator {
	cfg := &config.Config{
		SpoolDir: filepath.Join(dir, "spool"),
		Targets:  []config.Target{{URL: config.FileURL(filepath.Join(dir, "store"))}},
		LogLevel: "error",
		Hostname: "benchhost",
	}
	cfg.ApplyDefaults()
	if err := os.MkdirAll(filepath.Join(dir, "store"), 0o755); err != nil {
		b.Fatal(err)
	}
	r, err := replicator.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			b.Error(err)
		}
	})
	return r
}
