//go:build cgo

package e2e

import (
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestCrashReaders kills readers at random moments: `verneuilctl restore`
// replacing a file that an application may have open, and `verneuilctl
// verify`. The destination is always either the old file or the complete
// new one, and the replica is unaffected.
func TestCrashReaders(t *testing.T) {
	s := newSetup(t)
	db := filepath.Join(s.dir, "big.db")
	if err := s.writer("count", db, "VERNEUIL_E2E_N=400").Run(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(s.dir, "out.db")
	s.mustCtl("restore", db, "--out", out, "--force")
	good := testutil.FileSHA256(t, out)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20 {
		args := []string{"restore", db, "--out", out, "--force"}
		if i%4 == 3 {
			args = []string{"verify", db}
		}
		cmd := testutil.CtlCommand(t, s.config, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if got := testutil.FileSHA256(t, out); got != good {
			t.Fatalf("iteration %d: %s killed: destination is neither the old nor the new file", i, args[0])
		}
		testutil.IntegrityCheck(t, out)
	}
	s.syncRestoreCompare(db)
}
