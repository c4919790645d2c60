package verneuil_test

// Commit shapes through the VFS's queue of WAL commits: every page size,
// frames padded to the sector size (psow=0, synchronous=FULL), and
// transactions that spill frames before their commit and roll back to
// savepoints (frames rewritten in place, checksums rewritten).

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

func TestWALQueue_PageSizes(t *testing.T) {
	for _, ps := range []int{512, 1024, 2048, 4096, 8192, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "p.db")
			v := e.wqOpen(path)
			mustExec(t, v, fmt.Sprintf("PRAGMA page_size=%d", ps))
			wqWAL(t, v)
			wqSeed(t, v, 100)
			e.checkWALReplica(t, path)
			b := wqRead()
			for i := range 10 {
				mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", i)
			}
			wqMustQueue(t, b, fmt.Sprintf("page size %d", ps))
			e.checkWALReplica(t, path)
		})
	}
}

func TestWALQueue_PaddedFrames(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "pad.db")
	v := e.open(path, "_busy_timeout=10000&psow=0&_synchronous=FULL")
	v.SetMaxOpenConns(1)
	wqWAL(t, v)
	wqSeed(t, v, 300)
	e.checkWALReplica(t, path)
	b := wqRead()
	for i := range 30 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", i)
		if i%7 == 6 {
			e.checkWALReplica(t, path)
		}
	}
	wqMustQueue(t, b, "padding")
	e.checkWALReplica(t, path)
}

func TestWALQueue_SpillAndSavepoints(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "sp.db")
	v := e.wqOpen(path)
	wqWAL(t, v)
	wqSeed(t, v, 400)
	mustExec(t, v, "PRAGMA cache_size=2")
	mustExec(t, v, "PRAGMA cache_spill=1")
	e.checkWALReplica(t, path)
	b := wqRead()
	rng := rand.New(rand.NewPCG(1, 5))
	for i := range 60 {
		tx, err := v.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for k := range 3 + rng.IntN(10) {
			mustExec(t, tx, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(400))
			if k == 2 {
				mustExec(t, tx, "SAVEPOINT s")
			}
		}
		if i%3 == 0 {
			mustExec(t, tx, "ROLLBACK TO s")
			mustExec(t, tx, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(400))
		}
		mustExec(t, tx, "RELEASE s")
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if i%9 == 8 {
			e.checkWALReplica(t, path)
		}
	}
	wqMustQueue(t, b, "spill and savepoints")
	e.checkWALReplica(t, path)
}

// TestWALQueue_JournalSizeLimit: journal_size_limit=0 makes SQLite
// truncate the -wal after checkpoints and at restarts (legitimate cuts,
// unlike a hostile one); two connections commit, checkpoint and restart.
func TestWALQueue_JournalSizeLimit(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "jsl.db")
	a, b := e.wqOpen(path), e.wqOpen(path)
	wqWAL(t, a)
	wqSeed(t, a, 800)
	for _, c := range []*sql.DB{a, b} {
		mustExec(t, c, "PRAGMA journal_size_limit=0")
		mustExec(t, c, "PRAGMA wal_autocheckpoint=8")
	}
	e.checkWALReplica(t, path)
	before := wqRead()
	rng := rand.New(rand.NewPCG(8, 8))
	modes := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
	for i := range 300 {
		c := a
		if rng.IntN(3) == 0 {
			c = b
		}
		if rng.IntN(12) == 0 {
			mustExec(t, c, "PRAGMA wal_checkpoint("+modes[rng.IntN(4)]+")")
		}
		mustExec(t, c, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(300))
		if i%31 == 30 {
			e.checkWALReplica(t, path)
		}
	}
	e.checkWALReplica(t, path)
	wqMustQueue(t, before, "journal_size_limit=0")
}
