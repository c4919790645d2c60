package spool_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

func always(*spool.Dir) bool { return true }

// stagedSpool stages version seq of key for the file at path and, when
// uploaded, records it as uploaded.
func stagedSpool(t *testing.T, root, key, path string, uploaded bool) *spool.Dir {
	t.Helper()
	d := testutil.PublishManifest(t, root, key, spool.Info{Path: path, Name: "h:" + key}, 7, []byte("SQLite format 3\x00 data"), time.Now())
	if uploaded {
		_, enc, err := d.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WriteUploaded(enc); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestReclaim(t *testing.T) {
	cases := []struct {
		name     string
		exists   bool
		uploaded bool
		covers   bool
		marker   string
		minIdle  time.Duration
		want     bool
	}{
		{"gone and uploaded", false, true, true, "", 0, true},
		{"gone, version pending", false, false, true, "", 0, false},
		{"gone, record for other targets", false, true, false, "", 0, false},
		// Nothing can rescan a deleted file: see TestReclaimAfterRescanIdle.
		{"gone, rescan asked", false, true, true, spool.RescanFile, 0, true},
		{"gone, written outside capture", false, true, true, spool.RescanMarker, 0, true},
		{"gone, written recently", false, true, true, "", time.Hour, false},
		{"file exists", true, true, true, "", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			path := filepath.Join(t.TempDir(), "x.db")
			if tc.exists {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			d := stagedSpool(t, root, "k", path, tc.uploaded)
			if tc.marker != "" {
				if err := os.WriteFile(filepath.Join(d.Path, tc.marker), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := spool.Reclaim(root, "k", tc.minIdle, func(*spool.Dir) bool { return tc.covers })
			if err != nil {
				t.Fatal(err)
			}
			_, serr := os.Stat(d.Path)
			if got != tc.want || (serr != nil) != tc.want {
				t.Fatalf("Reclaim = %v (spool stat: %v), want %v", got, serr, tc.want)
			}
		})
	}
}

// TestReclaimSkipsLockedSpool: a spool whose lock or upload lock is held
// (a publish or an upload in progress) is not reclaimed.
func TestReclaimSkipsLockedSpool(t *testing.T) {
	for _, upload := range []bool{false, true} {
		root := t.TempDir()
		d := stagedSpool(t, root, "k", filepath.Join(root, "gone.db"), true)
		var unlock func()
		var err error
		if upload {
			unlock, err = d.UploadLock(true)
		} else {
			unlock, err = d.Lock()
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := spool.Reclaim(root, "k", 0, always)
		unlock()
		if err != nil || got {
			t.Fatalf("upload lock %v: Reclaim of a locked spool = %v, %v", upload, got, err)
		}
	}
}

// TestLockAfterReclaimRevivesSpool: a writer that opened the spool before
// it was reclaimed, and was waiting for its lock meanwhile, does not lock
// the removed spool: it recreates it, with a rescan marker and db.json.
// A Dir not from Open (an uploader) gets an error instead.
func TestLockAfterReclaimRevivesSpool(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "gone.db")
	writer := stagedSpool(t, root, "k", path, true)
	holder, err := spool.Existing(root, "k")
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := holder.Lock()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := writer.Lock() // waits on the lock file about to be moved
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	// What Reclaim does under the lock: move the spool away.
	if err := os.Rename(writer.Path, filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("writer's Lock after reclaim: %v", err)
	}
	if !writer.RescanWanted() {
		t.Error("revived spool does not ask for a rescan")
	}
	if info, err := writer.Info(); err != nil || info.Path != path {
		t.Errorf("revived spool's db.json = %+v, %v", info, err)
	}
	if err := os.RemoveAll(writer.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Lock(); err == nil {
		t.Error("Lock of a removed spool by a Dir not from Open succeeded")
	}
}

// TestSweepReclaimed removes what an interrupted reclaim left.
func TestSweepReclaimed(t *testing.T) {
	root := t.TempDir()
	left := filepath.Join(root, spool.ReclaimedDirName, "k.1.x", "chunks")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := spool.SweepReclaimed(root); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, spool.ReclaimedDirName)); len(ents) != 0 {
		t.Fatalf("left: %v", ents)
	}
}

// TestReclaimRace: processes reclaiming one spool at once remove it once,
// and the others see nothing to do (no error).
func TestReclaimRace(t *testing.T) {
	root := t.TempDir()
	stagedSpool(t, root, "k", filepath.Join(root, "gone.db"), true)
	const n = 8
	type out struct {
		done bool
		err  error
	}
	outs := make(chan out, n)
	for range n {
		go func() {
			done, err := spool.Reclaim(root, "k", 0, always)
			outs <- out{done, err}
		}()
	}
	removed := 0
	for range n {
		o := <-outs
		if o.err != nil {
			t.Errorf("Reclaim: %v", o.err)
		}
		if o.done {
			removed++
		}
	}
	if removed != 1 {
		t.Fatalf("%d reclaims reported removing the spool, want 1", removed)
	}
}
