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

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/config"
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
	r, err := verneuil.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		// Uploading a large version takes long on a busy machine.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			b.Error(err)
		}
	}()
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
