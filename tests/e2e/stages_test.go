//go:build cgo

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestCrashStages kills a writer at every named stage of a commit (during
// the chunk copy, while staging, while publishing, during upload); after
// each kill, what was published restores and passes integrity_check, and
// sync + restore is byte-identical to the database.
func TestCrashStages(t *testing.T) {
	for _, name := range failpoint.Names {
		t.Run(name, func(t *testing.T) {
			s := newSetup(t)
			db := filepath.Join(s.dir, "stage.db")
			for i, hit := range []int{1, 3, 7} {
				w := s.writer("stages", db, fmt.Sprintf("VERNEUIL_FAILPOINT=%s:%d", name, hit),
					fmt.Sprint("VERNEUIL_E2E_SEED=", i))
				err := w.Run()
				var ee *exec.ExitError
				if !errorsAs(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("failpoint %s:%d was not reached (writer ended with %v)", name, hit, err)
				}
				s.mustCtl("flush")
				out := filepath.Join(s.dir, "published.db")
				if _, errOut, code := s.ctl("restore", db, "--out", out); code == 0 {
					testutil.IntegrityCheck(t, out)
				} else if !strings.Contains(errOut, "no replica") {
					t.Fatalf("restore after kill at %s: %s", name, errOut)
				}
				os.Remove(out)
				s.syncRestoreCompare(db)
			}
		})
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	if ok {
		*target = ee
	}
	return ok
}
