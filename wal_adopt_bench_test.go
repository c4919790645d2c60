package verneuil_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// BenchmarkWALFirstCommitStall measures the first commit of a fresh
// process to a WAL database of VERNEUIL_STALL_DB_MB megabytes (default
// 256) whose -wal holds a few hundred frames: the latency of a 1-row
// INSERT on a new connection (opened and read first) through unix, through
// verneuil when the spool's manifest is the WAL position the commit
// starts from (adopted), and through verneuil when a bypassing commit
// came in between (the whole state is copied under the WAL write lock,
// as every first commit did before adoption). Each case runs three times;
// it prints each latency:
//
//	go test -run '^$' -bench BenchmarkWALFirstCommitStall -benchtime 1x .
func BenchmarkWALFirstCommitStall(b *testing.B) {
	mb := 256
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_STALL_DB_MB")); err == nil && v > 0 {
		mb = v
	}
	e := newEnv(b, func(c *config.Config) { c.LogLevel = "error" })
	path := filepath.Join(e.dir, "walstall.db")
	plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=WAL&_busy_timeout=10000")
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	plain.SetMaxOpenConns(1)
	mustExec(b, plain, "CREATE TABLE big(v BLOB)")
	mustExec(b, plain, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	for i := 0; i < mb; i += 16 {
		mustExec(b, plain, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?) INSERT INTO big(v) SELECT randomblob(1048576) FROM s", min(16, mb-i))
	}
	mustExec(b, plain, "PRAGMA wal_checkpoint(TRUNCATE)")
	// A first process captures the database (one rescan) and commits a
	// few hundred frames; it exits while plain keeps the -wal.
	db := e.open(path, "_busy_timeout=10000")
	db.SetMaxOpenConns(1)
	mustExec(b, db, "PRAGMA wal_autocheckpoint=0")
	for range 200 {
		mustExec(b, db, "INSERT INTO t(v) VALUES(randomblob(100))")
	}
	if err := e.r.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	db.Close()
	firstCommit := func(vfs string) time.Duration {
		c, err := sql.Open("sqlite3", "file:"+path+"?vfs="+vfs+"&_busy_timeout=10000")
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		c.SetMaxOpenConns(1)
		mustExec(b, c, "PRAGMA wal_autocheckpoint=0")
		var n int
		if err := c.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		mustExec(b, c, "INSERT INTO t(v) VALUES(randomblob(100))")
		return time.Since(t0)
	}
	for range b.N {
		for round := range 3 {
			unix := firstCommit("unix")
			// The spool's manifest is the position now (the unix commit
			// above must not come in between): capture it first.
			e.restartReplicator(b)
			warm := firstCommit("verneuil")
			if err := e.r.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			e.restartReplicator(b)
			a0, r0 := tracker.WALCounts()
			adopted := firstCommit("verneuil")
			a1, r1 := tracker.WALCounts()
			if a1-a0 != 1 || r1 != r0 {
				b.Fatalf("the first commit did not adopt (adopted %d, rescanned %d)", a1-a0, r1-r0)
			}
			e.restartReplicator(b)
			mustExec(b, plain, "INSERT INTO t(v) VALUES(randomblob(100))") // bypassing
			rescan := firstCommit("verneuil")
			if _, r2 := tracker.WALCounts(); r2-r1 != 1 {
				b.Fatalf("the first commit after a bypassing one did not rescan")
			}
			if err := e.r.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			walSize := int64(-1)
			if fi, err := os.Stat(path + "-wal"); err == nil {
				walSize = fi.Size()
			}
			b.Logf("round %d, %d MiB WAL database, first commit of a process: unix %v, verneuil adopting %v (%.2fx), verneuil rescanning %v (%.1fx); warm-up %v; -wal %d KiB",
				round, mb, unix.Round(time.Microsecond), adopted.Round(time.Microsecond), float64(adopted)/float64(unix),
				rescan.Round(time.Millisecond), float64(rescan)/float64(unix), warm.Round(time.Millisecond), walSize>>10)
		}
	}
}
