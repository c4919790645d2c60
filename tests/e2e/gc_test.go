//go:build cgo

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// withConfig adds keys to the setup's configuration.
func (s *setup) withConfig(extra map[string]any) {
	s.t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal([]byte(s.config), &cfg); err != nil {
		s.t.Fatal(err)
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, _ := json.Marshal(cfg)
	s.config = string(b)
}

func (s *setup) openStore() *fileblob.Store {
	s.t.Helper()
	st, err := fileblob.OpenDir(s.store, false)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

// gcSummary parses verneuilctl gc --json output.
func gcSummary(t *testing.T, out string) gc.Summary {
	t.Helper()
	var sums []gc.Summary
	if err := json.Unmarshal([]byte(out), &sums); err != nil || len(sums) != 1 {
		t.Fatalf("gc --json output %q: %v", out, err)
	}
	return sums[0]
}

// TestGCRace races collections against live writers in several processes
// (each with its copier and a warm known-chunk cache), restores of the
// latest versions and a second collection, with a short grace period;
// after every round no stored manifest may reference a missing chunk.
func TestGCRace(t *testing.T) {
	s := newSetup(t)
	s.withConfig(map[string]any{"gc_grace": "6s", "upload_interval": "200ms",
		"retention": map[string]any{"keep_all": "1s", "hourly": "1s", "daily": "1s"}})
	var dbs []string
	var writers []*os.Process
	for i := range 3 {
		db := filepath.Join(s.dir, fmt.Sprintf("race%d.db", i))
		dbs = append(dbs, db)
		// Uploads pause between their chunks and their manifest (within
		// the copiers' publish deadline, a quarter of the grace period),
		// so that collections start and read the database in between.
		w := s.writer("churn", db, fmt.Sprint("VERNEUIL_E2E_SEED=", i), "VERNEUIL_FAILPOINT_SLEEP=upload-before-manifest:1s")
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		writers = append(writers, w.Process)
		go w.Wait()
	}
	defer func() {
		for _, p := range writers {
			p.Kill()
		}
	}()
	store := s.openStore()
	rounds := 8
	if testing.Short() {
		rounds = 4
	}
	var (
		mu                        sync.Mutex
		deleted, manifestsDeleted int64
	)
	for round := range rounds {
		time.Sleep(2 * time.Second)
		var wg sync.WaitGroup
		errs := make(chan string, 16)
		for g := range 2 {
			args := []string{"gc", "--json", "--grace", "6s"}
			if g == 0 {
				args = append(args, "--keep-last", "2")
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, errOut, code := s.ctl(args...)
				if code != 0 {
					errs <- fmt.Sprintf("gc %v: exit %d: %s", args, code, errOut)
					return
				}
				sum := gcSummary(t, out)
				// A collection's own count of missing chunks includes
				// those of versions the other collection (another
				// policy, a later start) deleted meanwhile: the check
				// after the round is the authoritative one.
				mu.Lock()
				deleted += sum.ChunksDeleted
				manifestsDeleted += sum.ManifestsDeleted
				mu.Unlock()
			}()
		}
		for i, db := range dbs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out := filepath.Join(s.dir, fmt.Sprintf("restored-%d-%d.db", round, i))
				_, errOut, code := s.ctl("restore", db, "--out", out)
				if code != 0 && !strings.Contains(errOut, "no replica") {
					errs <- fmt.Sprintf("restore %s: exit %d: %s", db, code, errOut)
					return
				}
				if code == 0 {
					testutil.IntegrityCheck(t, out)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if missing, _ := gctest.Missing(t, store); len(missing) != 0 {
			t.Fatalf("round %d: stored manifests reference missing chunks: %v", round, missing)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	if deleted == 0 || manifestsDeleted == 0 {
		t.Fatalf("the collections deleted %d chunks and %d manifests: the race was not exercised", deleted, manifestsDeleted)
	}
	t.Logf("%d rounds: %d chunks and %d manifests deleted", rounds, deleted, manifestsDeleted)
	// Writers stop; everything is uploaded; one run with no grace leaves
	// only what the latest versions reference, and they restore exactly.
	for _, p := range writers {
		p.Signal(syscall.SIGKILL)
	}
	writers = nil
	time.Sleep(200 * time.Millisecond)
	for _, db := range dbs {
		s.syncRestoreCompare(db)
	}
	s.mustCtl("gc", "--keep-last", "1", "--grace", "0")
	missing, unref := gctest.Missing(t, store)
	if len(missing) != 0 || len(unref) != 0 {
		t.Fatalf("after the final collection: missing %v, unreferenced %v", missing, unref)
	}
	for _, db := range dbs {
		// What remains is the latest version and, when it is a delta
		// manifest, the full manifest it is based on (nothing else).
		var versions []struct {
			Version  string `json:"version"`
			Retained string `json:"retained"`
		}
		if err := json.Unmarshal([]byte(s.mustCtl("--json", "list", "--versions", db)), &versions); err != nil ||
			len(versions) == 0 || len(versions) > 2 || versions[len(versions)-1].Retained != "latest" ||
			(len(versions) == 2 && versions[0].Retained != "base of latest" && versions[0].Retained != "base of "+versions[1].Version) {
			t.Fatalf("list --versions %s after gc --keep-last 1: %+v, %v", db, versions, err)
		}
		out := filepath.Join(s.dir, "final.db")
		s.mustCtl("restore", db, "--out", out, "--force", "--at", time.Now().UTC().Format(time.RFC3339Nano))
		if got, want := testutil.FileSHA256(t, out), testutil.FileSHA256(t, db); got != want {
			t.Fatalf("%s restores to other bytes after the final collection", db)
		}
	}
}

// TestGCKilled kills collections at random points; no retained version
// breaks, and a later collection finishes the job.
func TestGCKilled(t *testing.T) {
	s := newSetup(t)
	store := s.openStore()
	f := gctest.Build(t, store, 12, 8, 8, 5)
	time.Sleep(20 * time.Millisecond) // every object older than the runs' start
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	kills := 0
	for range 12 {
		cmd := testutil.CtlCommand(t, s.config, "gc", "--keep-last", "3", "--grace", "0")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			kills++
		}
		cmd.Wait()
		if missing, _ := gctest.Missing(t, store); len(missing) != 0 {
			t.Fatalf("after a killed collection, stored manifests reference missing chunks: %v", missing)
		}
		f.CheckRestores(t, store)
	}
	s.mustCtl("gc", "--keep-last", "3", "--grace", "0")
	missing, unref := gctest.Missing(t, store)
	if len(missing) != 0 || len(unref) != 0 {
		t.Fatalf("after the last collection: missing %v, unreferenced %v", missing, unref)
	}
	if n := f.CheckRestores(t, store); n != 12*3 {
		t.Fatalf("%d versions restore after the last collection, want %d", n, 12*3)
	}
	t.Logf("%d collections killed", kills)
}
