//go:build cgo

package s3

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// writeLoad commits small update transactions to a fixed-size table until
// stopped, and measures them.
type writeLoad struct {
	db       *sql.DB
	stop     chan struct{}
	done     chan struct{}
	commits  int
	failures []error
	slowest  time.Duration
}

const loadRows = 2000

func seedLoad(t *testing.T, db *sql.DB) {
	t.Helper()
	exec1(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range loadRows {
		if _, err := tx.Exec("INSERT INTO t(id, v) VALUES(?, randomblob(500))", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func startLoad(db *sql.DB, every time.Duration) *writeLoad {
	w := &writeLoad{db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		rng := rand.New(rand.NewPCG(3, 4))
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			start := time.Now()
			err := func() error {
				tx, err := db.Begin()
				if err != nil {
					return err
				}
				for range 5 {
					if _, err := tx.Exec("UPDATE t SET v = randomblob(500) WHERE id = ?", rng.IntN(loadRows)); err != nil {
						tx.Rollback()
						return err
					}
				}
				return tx.Commit()
			}()
			if err != nil {
				w.failures = append(w.failures, err)
				continue
			}
			w.commits++
			w.slowest = max(w.slowest, time.Since(start))
		}
	}()
	return w
}

func (w *writeLoad) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	t.Logf("writer: %d commits, slowest %v, %d failures", w.commits, w.slowest, len(w.failures))
	if len(w.failures) > 0 {
		t.Errorf("%d writes failed, first: %v", len(w.failures), w.failures[0])
	}
	if w.slowest > 2*time.Second {
		t.Errorf("a commit took %v: replication stalled a write", w.slowest)
	}
}

// spoolWatch samples the bytes in a database's spool.
type spoolWatch struct {
	mu   sync.Mutex
	max  int64
	stop chan struct{}
	done chan struct{}
}

func watchSpool(d *spool.Dir) *spoolWatch {
	w := &spoolWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			if n, err := d.Usage(); err == nil {
				w.mu.Lock()
				w.max = max(w.max, n)
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

// check stops sampling and checks the spool stayed within a small multiple
// of the database size.
func (w *spoolWatch) check(t *testing.T, dbPath string) {
	t.Helper()
	close(w.stop)
	<-w.done
	st, err := os.Stat(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	limit := 3*st.Size() + 512<<10
	t.Logf("spool peaked at %d bytes for a %d-byte database", w.max, st.Size())
	if w.max > limit {
		t.Errorf("spool grew to %d bytes for a %d-byte database (limit %d)", w.max, st.Size(), limit)
	}
}

// waitCaughtUp waits until the background copier has uploaded the newest
// staged version of the database (no flush). The tracker stages the last
// commits within its build delay (100 ms) of the writer stopping.
func waitCaughtUp(t *testing.T, d *spool.Dir, timeout time.Duration) time.Duration {
	t.Helper()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	for {
		m, _, err1 := d.Manifest()
		up, _, err2 := d.Uploaded()
		if err1 == nil && err2 == nil && m != nil && up != nil && up.Seq >= m.Seq {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("background upload did not catch up within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type faultSetup struct {
	cfg   *config.Config
	r     *replicator.Replicator
	proxy *faultProxy
	path  string
	db    *sql.DB
	spool *spool.Dir
}

func newFaultSetup(t *testing.T) *faultSetup {
	endpoint, bucket := s3test.Start(t)
	proxy := startProxy(t, endpoint)
	dir := t.TempDir()
	cfg := s3Config(dir, proxy.URL(), bucket, "faults")
	cfg.LogLevel = "error"
	f := &faultSetup{cfg: cfg, proxy: proxy, path: filepath.Join(dir, "load.db")}
	f.r = startReplicator(t, cfg)
	f.db = openDB(t, f.path)
	seedLoad(t, f.db)
	if err := f.r.FlushDB(context.Background(), f.path); err != nil {
		t.Fatal(err)
	}
	f.spool = spoolOf(t, cfg, f.path)
	return f
}

// TestFlakyStore injects 5xx answers, slow answers and connection resets
// while a writer commits 50 times a second: no write fails or stalls, the
// spool stays bounded, and the replica catches up byte-identical.
func TestFlakyStore(t *testing.T) {
	f := newFaultSetup(t)
	load := startLoad(f.db, 20*time.Millisecond)
	watch := watchSpool(f.spool)
	for _, phase := range []struct {
		mode  string
		rate  float64
		delay time.Duration
	}{
		{"5xx", 0.5, 0},
		{"slow", 1, 700 * time.Millisecond},
		{"reset", 0.4, 0},
	} {
		f.proxy.set(phase.mode, phase.rate, phase.delay)
		time.Sleep(3 * time.Second)
		req, inj := f.proxy.counts()
		t.Logf("after %s: %d requests, %d faults injected", phase.mode, req, inj)
	}
	f.proxy.set("", 0, 0)
	time.Sleep(time.Second)
	load.finish(t)
	t.Logf("caught up %v after the last commit", waitCaughtUp(t, f.spool, 20*time.Second))
	watch.check(t, f.path)
	restoreCompare(t, f.cfg, openStore(t, f.cfg), f.path)
	st := f.r.Stats()
	t.Logf("copier: %d manifests, %d requests, %d retries, %d failed uploads", st.Manifests, st.Requests, st.Retries, st.Errors)
	if st.Retries == 0 || st.Manifests < 3 {
		t.Errorf("stats = %+v", st)
	}
}

// TestStoreOutage takes the store away for 32 seconds while a writer
// commits: no write fails or stalls, the spool stays bounded, status shows
// the backlog and the error, and replication catches up by itself.
func TestStoreOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("the outage lasts 32 seconds")
	}
	f := newFaultSetup(t)
	load := startLoad(f.db, 20*time.Millisecond)
	watch := watchSpool(f.spool)
	time.Sleep(2 * time.Second)
	f.proxy.down()
	outage := time.Now()
	time.Sleep(32 * time.Second)

	rows := status(t, f.cfg)
	if len(rows) != 1 || !rows[0].Pending || rows[0].LagSeconds < 20 || rows[0].LastError == nil ||
		rows[0].LastError.Failures < 2 {
		t.Errorf("status during the outage: %+v (last error %+v)", rows, rows[0].LastError)
	} else {
		t.Logf("status during the outage: lag %.1fs, %d failures: %s", rows[0].LagSeconds,
			rows[0].LastError.Failures, rows[0].LastError.Message)
	}
	if st := f.r.Stats(); !st.Paused || st.PendingDatabases != 1 {
		t.Errorf("copier during the outage: %+v", st)
	}
	ds := f.r.DBStats()
	if len(ds) != 1 || ds[0].LagSeconds < 20 || ds[0].LastError == "" {
		t.Errorf("db stats during the outage: %+v", ds)
	}

	f.proxy.up()
	back := time.Now()
	t.Logf("outage lasted %v", back.Sub(outage).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	load.finish(t)
	waitCaughtUp(t, f.spool, 30*time.Second)
	t.Logf("caught up %v after the store came back", time.Since(back).Round(time.Millisecond))
	watch.check(t, f.path)
	restoreCompare(t, f.cfg, openStore(t, f.cfg), f.path)
	if rows := status(t, f.cfg); len(rows) != 1 || rows[0].Pending || rows[0].LastError != nil {
		t.Errorf("status after recovery: %+v", rows)
	}
}
