//go:build cgo

package e2e

import (
	"fmt"
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

// TestCrashLoopDoubleFault is the crash loop with a second fault landing
// during the recovery from the first: two writer processes commit to one
// database while the spool's tmp/ becomes unusable (builds and publishes
// fail while commits keep arriving), then one writer is killed and
// restarted while the other keeps its connection, and the spool recovers.
// After each iteration, a fresh writer's commits must flush to a replica
// byte-identical to the file (no torn manifest was published or adopted as
// a base), and sync + restore must be byte-identical too.
func TestCrashLoopDoubleFault(t *testing.T) {
	iters := 6
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_DOUBLE_FAULT_ITERATIONS")); err == nil && v > 0 {
		iters = v
	}
	s := newSetup(t)
	db := filepath.Join(s.dir, "double.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	pause := func() { time.Sleep(time.Duration(30+rng.IntN(200)) * time.Millisecond) }
	live := map[*os.Process]bool{}
	start := func(seed int) *os.Process {
		w := s.writer("loop", db, "VERNEUIL_E2E_SEED="+strconv.Itoa(seed))
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		live[w.Process] = true
		return w.Process
	}
	stop := func(p *os.Process) {
		p.Signal(syscall.SIGKILL)
		p.Wait()
		delete(live, p)
	}
	t.Cleanup(func() {
		for p := range live {
			stop(p)
		}
	})
	for i := range iters {
		a, b := start(2*i), start(2*i+1)
		pause()
		// Fault 1: the spool's tmp/ becomes unusable while both commit.
		// (Renamed away, not removed: the writers keep creating files in
		// it.)
		tmps, _ := filepath.Glob(filepath.Join(s.dir, "spool", "dbs", "*", "tmp"))
		for j, tmp := range tmps {
			if err := os.Rename(tmp, filepath.Join(s.dir, fmt.Sprintf("tmp-gone-%d-%d", i, j))); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(tmp, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		pause()
		// Fault 2, during the first: a writer dies and restarts while
		// the other keeps its live connection.
		stop(a)
		a = start(1000 + i)
		pause()
		// The spool recovers while both still commit.
		for _, tmp := range tmps {
			if err := os.Remove(tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		pause()
		stop(a)
		stop(b)
		// What was published restores to a consistent state.
		if _, errOut, code := s.ctl("flush"); code != 0 {
			t.Logf("iteration %d: flush: %s", i, strings.TrimSpace(errOut))
		}
		out := filepath.Join(s.dir, "published.db")
		if _, errOut, code := s.ctl("restore", db, "--out", out, "--force"); code == 0 {
			testutil.IntegrityCheck(t, out)
		} else if !strings.Contains(errOut, "no replica") {
			t.Fatalf("iteration %d: restore published replica: %s", i, errOut)
		}
		// A fresh writer continues from the spool; its flush succeeds
		// only with a replica identical to the file.
		if err := s.writer("count", db, "VERNEUIL_E2E_N=3", "VERNEUIL_E2E_SEED="+strconv.Itoa(i)).Run(); err != nil {
			t.Fatalf("iteration %d: writer after the faults: %v", i, err)
		}
		s.mustCtl("restore", db, "--out", out, "--force")
		if got, want := testutil.FileSHA256(t, out), testutil.FileSHA256(t, db); got != want {
			t.Fatalf("iteration %d: after a successful flush the replica %s differs from the file %s", i, got, want)
		}
		s.syncRestoreCompare(db)
	}
	testutil.IntegrityCheck(t, db)
}
