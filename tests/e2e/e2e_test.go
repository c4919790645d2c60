//go:build cgo

package e2e

import (
	"bufio"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

func countRows(t *testing.T, path, where string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t WHERE " + where).Scan(&n); err != nil {
		t.Fatalf("count rows in %s: %v", path, err)
	}
	return n
}

// TestCrashLoop kills a writer with SIGKILL at random moments; after each
// kill, what was published is a consistent committed state, and sync +
// restore is byte-identical to the database.
func TestCrashLoop(t *testing.T) {
	iters := 50
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_CRASH_ITERATIONS")); err == nil && v > 0 {
		iters = v
	}
	s := newSetup(t)
	db := filepath.Join(s.dir, "crash.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start := time.Now()
	// slowStart grows while writers are killed before they create the
	// database (a loaded machine starts processes slowly), so the loop
	// always gets to kill writers that have one.
	var slowStart time.Duration
	for i := range iters {
		w := s.writer("loop", db, "VERNEUIL_E2E_SEED="+strconv.Itoa(i),
			"VERNEUIL_E2E_PARAMS="+[]string{"_journal_mode=DELETE", "_journal_mode=TRUNCATE", "_journal_mode=PERSIST"}[i%3])
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(slowStart + time.Duration(20+rng.IntN(250))*time.Millisecond)
		w.Process.Signal(syscall.SIGKILL)
		w.Wait()
		if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
			slowStart += 100 * time.Millisecond
			continue // killed before it created the database (a slow start)
		}
		if i%4 == 3 {
			// A power cut loses unsynced spool data: truncate or zero
			// spool files. Nothing damaged may be published.
			damageSpool(t, filepath.Join(s.dir, "spool"), rng)
			if _, errOut, code := s.ctl("flush"); code != 0 {
				t.Logf("iteration %d: flush after spool damage: %s", i, strings.TrimSpace(errOut))
			}
		} else {
			// What the killed writer spooled: a committed state, never torn.
			s.mustCtl("flush")
		}
		if _, err := os.Stat(filepath.Join(s.store, "dbs")); err == nil {
			out := filepath.Join(s.dir, "published.db")
			if _, errOut, code := s.ctl("restore", db, "--out", out, "--force"); code == 0 {
				testutil.IntegrityCheck(t, out)
			} else if !strings.Contains(errOut, "no replica") {
				t.Fatalf("iteration %d: restore published replica: %s", i, errOut)
			}
		}
		s.syncRestoreCompare(db)
		if (i+1)%50 == 0 {
			t.Logf("%d of %d iterations in %v", i+1, iters, time.Since(start).Round(time.Second))
		}
	}
	testutil.IntegrityCheck(t, db)
}

// TestHotJournal: a transaction that never committed leaves a hot journal;
// no manifest describes it.
func TestHotJournal(t *testing.T) {
	s := newSetup(t)
	db := filepath.Join(s.dir, "hot.db")
	w := s.writer("hang", db)
	stdout, _ := w.StdoutPipe()
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("writer said %q", line)
	}
	w.Process.Signal(syscall.SIGKILL)
	w.Wait()
	if _, err := os.Stat(db + "-journal"); err != nil {
		t.Fatalf("expected a hot journal: %v", err)
	}
	s.mustCtl("flush")
	out := filepath.Join(s.dir, "before-sync.db")
	s.mustCtl("restore", db, "--out", out)
	testutil.IntegrityCheck(t, out)
	if n := countRows(t, out, "k = -1"); n != 0 {
		t.Fatalf("replica holds %d uncommitted rows", n)
	}
	if n := countRows(t, out, "1"); n != 20 {
		t.Fatalf("replica holds %d rows, want 20", n)
	}
	s.syncRestoreCompare(db)
	if n := countRows(t, db, "1"); n != 20 {
		t.Fatalf("database holds %d rows after rollback, want 20", n)
	}
}

// TestBypassWriter: a writer that does not use the VFS changes the file
// between two verneuil commits; the next capture rescans.
func TestBypassWriter(t *testing.T) {
	s := newSetup(t)
	path := filepath.Join(s.dir, "bypass.db")
	run := func(vfs string, q ...string) {
		dsn := "file:" + path + "?_journal_mode=DELETE"
		if vfs != "" {
			dsn += "&vfs=" + vfs
		}
		db, err := sql.Open("sqlite3", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, stmt := range q {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	w := s.writer("count", path, "VERNEUIL_E2E_N=50")
	if err := w.Run(); err != nil {
		t.Fatal(err)
	}
	// Plain unix writes between verneuil commits.
	run("", "UPDATE t SET v = randomblob(3000) WHERE k % 3 = 0", "INSERT INTO t(k, v) VALUES(7777, zeroblob(100000))")
	w = s.writer("count", path, "VERNEUIL_E2E_N=3")
	if err := w.Run(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(s.dir, "restored.db")
	s.mustCtl("restore", path, "--out", out)
	if got, want := testutil.FileSHA256(t, out), testutil.FileSHA256(t, path); got != want {
		t.Fatalf("replica after bypass write differs from the database")
	}
	if n := countRows(t, out, "k = 7777"); n != 1 {
		t.Fatalf("bypass write missing from replica")
	}
	// A bypass write with no verneuil commit after it: sync picks it up.
	run("", "DELETE FROM t WHERE k % 2 = 1")
	s.syncRestoreCompare(path)
}

// TestMultiProcessWriters: several processes commit to one database; the
// replica converges to the final file.
func TestMultiProcessWriters(t *testing.T) {
	s := newSetup(t)
	path := filepath.Join(s.dir, "multi.db")
	// Create the schema first so writers do not race on it.
	first := s.writer("count", path, "VERNEUIL_E2E_N=1")
	if err := first.Run(); err != nil {
		t.Fatal(err)
	}
	var ws []*os.Process
	errs := make(chan error, 4)
	for i := range 4 {
		w := s.writer("count", path, "VERNEUIL_E2E_N=60", fmt.Sprint("VERNEUIL_E2E_SEED=", i))
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w.Process)
		go func() { errs <- w.Wait() }()
	}
	for range ws {
		if err := <-errs; err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	out := filepath.Join(s.dir, "restored.db")
	s.mustCtl("flush")
	s.mustCtl("restore", path, "--out", out)
	if got, want := testutil.FileSHA256(t, out), testutil.FileSHA256(t, path); got != want {
		t.Fatalf("replica differs from the database after concurrent writers")
	}
	if n := countRows(t, out, "1"); n != 241 {
		t.Fatalf("replica has %d rows, want 241", n)
	}
}

// damageSpool truncates or zeroes about half of the files in a spool, as a
// power cut loses data that was never fsynced.
func damageSpool(t *testing.T, root string, rng *rand.Rand) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "lock") || rng.IntN(2) == 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if rng.IntN(2) == 0 {
			os.Truncate(p, rng.Int64N(info.Size()+1))
		} else {
			os.WriteFile(p, make([]byte, info.Size()), 0o644)
		}
		return nil
	})
}
