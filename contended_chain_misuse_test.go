package verneuil_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// An operator truncates, then removes, the spool's chain file while
// writer processes map it: their accesses fault and are recovered (the
// chain is disabled or goes on through a new file), the captures fall back
// to adopting or rescanning, no process dies, and the replica is exact.
func TestContendedChainFileDamagedUnderWriters(t *testing.T) {
	e := contendEnv(t)
	path := contendSetup(t, e, "a", "b", "c")
	chain := filepath.Join(e.cfg.SpoolDir, spool.DBsDirName, e.key(path), spool.ChainFile)
	ws := startWriters(t, e, path, 200, "a", "b")
	a, b := ws[0], ws[1]
	a.waitCommits(t, 30)
	b.waitCommits(t, 30)
	if _, err := os.Stat(chain); err != nil {
		t.Fatalf("no chain file at %s after 30 alternating commits each: %v", chain, err)
	}
	if err := os.Truncate(chain, 0); err != nil {
		t.Fatal(err)
	}
	a.waitCommits(t, 80)
	if err := os.Remove(chain); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	c := startWriter(t, e, path, "c", 100, false)
	a.wait(t)
	b.wait(t)
	c.wait(t)
	contendVerify(t, e, path)
}
