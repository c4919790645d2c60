package verneuil_test

// Adversarial tests of the VFS's queue of WAL commits (shimwalqueue.c,
// internal/tracker/walqueue.go): every scenario first checks that commits
// really took the queued path (sqlite3vfs.ReadStats().WALQueued grew),
// then that the restored replica is the checkpointed reference.

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
	"github.com/verneuil-go/verneuil/internal/testutil"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// wqOpen opens one SQLite connection (a *sql.DB of one connection) through
// verneuil, with a busy timeout.
func (e *env) wqOpen(path string) *sql.DB {
	e.t.Helper()
	db := e.open(path, "_busy_timeout=10000")
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db
}

// wqSeeded opens path through verneuil (wqOpen), in WAL mode, with table t
// of n rows (wqSeed).
func (e *env) wqSeeded(t *testing.T, path string, n int) *sql.DB {
	t.Helper()
	db := e.wqOpen(path)
	wqWAL(t, db)
	wqSeed(t, db, n)
	return db
}

// wqUnix opens one connection to path through the plain unix VFS.
func wqUnix(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func wqWAL(t *testing.T, db *sql.DB) {
	t.Helper()
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode=WAL: %q %v", mode, err)
	}
}

// wqSeed creates table t with n rows of 100-byte blobs.
func wqSeed(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	mustExec(t, db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
	mustExec(t, db, "BEGIN")
	for i := range n {
		mustExec(t, db, "INSERT INTO t(id, v) VALUES(?, randomblob(100))", i)
	}
	mustExec(t, db, "COMMIT")
}

// wqRestored restores the latest replica of path into a new file.
func (e *env) wqRestored(t *testing.T, path string) string {
	t.Helper()
	ctx := context.Background()
	m, err := restore.Latest(ctx, e.r.Targets()[0], e.key(path))
	if err != nil {
		t.Fatalf("latest: %v", err)
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	if err := restore.ToFile(ctx, e.r.Targets()[0], m, out); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return out
}

// wqFlushOneOf flushes and asserts the replica is one of the files want.
func (e *env) wqFlushOneOf(t *testing.T, path string, what string, want ...string) int {
	t.Helper()
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	got := testutil.FileSHA256(t, e.wqRestored(t, path))
	for i, w := range want {
		if testutil.FileSHA256(t, w) == got {
			return i
		}
	}
	t.Fatalf("%s: the replica is none of the %d allowed states (%s)", what, len(want),
		testutil.DescribeDiff(e.wqRestored(t, path), want[len(want)-1]))
	return -1
}

type wqCounters struct{ queued, takes, applied, commits, discarded int64 }

func wqRead() wqCounters {
	s := sqlite3vfs.ReadStats()
	a, c, d := tracker.WALQueueStats()
	return wqCounters{s.WALQueued, s.WALQueueTakes, a, c, d}
}

// wqMustQueue fails unless commits were queued since before.
func wqMustQueue(t *testing.T, before wqCounters, what string) {
	t.Helper()
	now := wqRead()
	t.Logf("%s: queued %d, takes %d, applied %d (%d commits), discarded %d", what,
		now.queued-before.queued, now.takes-before.takes, now.applied-before.applied,
		now.commits-before.commits, now.discarded-before.discarded)
	if now.queued == before.queued {
		t.Fatalf("%s: no commit took the queued path", what)
	}
}

// TestWALQueue_ConnectionsAndCheckpoints: three connections of one process
// commit alternately (the queue is shared by the database's connections),
// with checkpoints of every kind from any of them and a small
// auto-checkpoint; the replica is checked often.
func TestWALQueue_ConnectionsAndCheckpoints(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "q.db")
	conns := []*sql.DB{e.wqOpen(path), e.wqOpen(path), e.wqOpen(path)}
	wqWAL(t, conns[0])
	wqSeed(t, conns[0], 2500) // about 300 KiB: five chunks
	for _, c := range conns {
		mustExec(t, c, "PRAGMA wal_autocheckpoint=50")
	}
	e.checkWALReplica(t, path)
	before := wqRead()
	rng := rand.New(rand.NewPCG(7, 7))
	modes := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
	for i := range 400 {
		c := conns[rng.IntN(len(conns))]
		switch r := rng.IntN(20); {
		case r == 0:
			mustExec(t, c, "PRAGMA wal_checkpoint("+modes[rng.IntN(len(modes))]+")")
		case r == 1:
			mustExec(t, c, "INSERT INTO t(v) VALUES(randomblob(?))", 50+rng.IntN(3000))
		default:
			mustExec(t, c, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(300))
		}
		if i%37 == 36 {
			e.checkWALReplica(t, path)
		}
	}
	e.checkWALReplica(t, path)
	wqMustQueue(t, before, "connections and checkpoints")
}

// TestWALQueue_ForeignWriterBetweenQueued: a plain unix connection commits
// or checkpoints between commits the VFS queued. After the next commit
// through the VFS the replica is the reference; flushed right after the
// foreign action, it is the state before it or the reference (stale is
// allowed for a write the VFS did not see).
func TestWALQueue_ForeignWriterBetweenQueued(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "f.db")
	v := e.wqSeeded(t, path, 1000)
	u := wqUnix(t, path)
	e.checkWALReplica(t, path)
	before := wqRead()
	rng := rand.New(rand.NewPCG(3, 9))
	actions := []string{
		"UPDATE t SET v=randomblob(100) WHERE id=%d",
		"INSERT INTO t(v) VALUES(randomblob(2000))",
		"PRAGMA wal_checkpoint(PASSIVE)",
		"PRAGMA wal_checkpoint(FULL)",
		"PRAGMA wal_checkpoint(RESTART)",
		"PRAGMA wal_checkpoint(TRUNCATE)",
	}
	for round := range 36 {
		// A capture through the VFS enables the queue; the next commits
		// are queued.
		for range 2 + rng.IntN(4) {
			mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(200))
		}
		stale := walReference(t, path)
		a := actions[round%len(actions)]
		if round%len(actions) == 0 {
			a = fmt.Sprintf(a, rng.IntN(200))
		}
		mustExec(t, u, a)
		if round%3 == 0 {
			// Flushed before any other commit through the VFS.
			e.wqFlushOneOf(t, path, "after "+a, stale, walReference(t, path))
		}
		for range 1 + rng.IntN(3) {
			mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(200))
		}
		e.wqFlushOneOf(t, path, fmt.Sprintf("round %d (%s) then a commit through the VFS", round, a), walReference(t, path))
	}
	wqMustQueue(t, before, "foreign writer")
}

// TestWALQueue_GrowthAndShrink: queued commits while the database grows
// within and across chunks (64 KiB), big rows on overflow pages, DROP
// TABLE, VACUUM in WAL mode, and a page_size change through rollback mode.
func TestWALQueue_GrowthAndShrink(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "g.db")
	v := e.wqSeeded(t, path, 50)
	mustExec(t, v, "PRAGMA wal_autocheckpoint=0")
	e.checkWALReplica(t, path)
	before := wqRead()
	rng := rand.New(rand.NewPCG(5, 1))
	for i := range 300 {
		switch rng.IntN(8) {
		case 0:
			mustExec(t, v, "INSERT INTO t(v) VALUES(randomblob(?))", 5000+rng.IntN(20000)) // overflow pages
		case 1, 2:
			mustExec(t, v, "INSERT INTO t(v) VALUES(randomblob(?))", 50+rng.IntN(200))
		default:
			mustExec(t, v, "UPDATE t SET v=randomblob(length(v)) WHERE id=?", rng.IntN(50))
		}
		if i%29 == 28 {
			e.checkWALReplica(t, path)
		}
	}
	e.checkWALReplica(t, path)
	wqMustQueue(t, before, "growth")
	mustExec(t, v, "CREATE TABLE big(x BLOB)")
	mustExec(t, v, "INSERT INTO big SELECT randomblob(4000) FROM t")
	for range 5 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(50))
	}
	mustExec(t, v, "DROP TABLE big")
	for range 5 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(50))
	}
	e.checkWALReplica(t, path)
	mustExec(t, v, "DELETE FROM t WHERE id%2=0")
	mustExec(t, v, "VACUUM")
	for range 5 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", 2*rng.IntN(25)+1)
	}
	e.checkWALReplica(t, path)
	// page_size: only through rollback mode.
	var mode string
	if err := v.QueryRow("PRAGMA journal_mode=DELETE").Scan(&mode); err != nil || mode != "delete" {
		t.Fatalf("journal_mode=DELETE: %q %v", mode, err)
	}
	mustExec(t, v, "PRAGMA page_size=1024")
	mustExec(t, v, "VACUUM")
	wqWAL(t, v)
	// The page_size change rewrote the file: the pending set may be
	// spilled, which keeps the queue off until a build.
	mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=1")
	e.checkWALReplica(t, path)
	b2 := wqRead()
	for range 40 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", 2*rng.IntN(25)+1)
	}
	e.checkWALReplica(t, path)
	wqMustQueue(t, b2, "after page_size 1024")
}

// TestWALQueue_CloseWithQueued: commits still queued when the last
// connection closes (no flush before): the replica has the last commit.
// Then the same with the Replicator closed while commits are queued.
func TestWALQueue_CloseWithQueued(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "c.db")
	for round := range 4 {
		a, b := e.wqOpen(path), e.wqOpen(path)
		wqWAL(t, a)
		if round == 0 {
			wqSeed(t, a, 500)
			e.checkWALReplica(t, path)
		}
		before := wqRead()
		for i := range 20 {
			c := a
			if i%3 == 0 {
				c = b
			}
			mustExec(t, c, "UPDATE t SET v=randomblob(100) WHERE id=?", (i*7+round)%100)
		}
		wqMustQueue(t, before, fmt.Sprintf("round %d", round))
		if round%2 == 0 {
			b.Close()
			a.Close()
		} else {
			a.Close()
			b.Close()
		}
		if _, err := os.Stat(path + "-wal"); err == nil {
			t.Logf("round %d: the -wal is still there after the last close", round)
		}
		e.checkWALReplica(t, path)
	}
}

// TestWALQueue_ReplicatorCloseWithQueued: the Replicator is closed while
// commits are queued; the replica published at the close has them.
func TestWALQueue_ReplicatorCloseWithQueued(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "rc.db")
	v := e.wqSeeded(t, path, 500)
	e.checkWALReplica(t, path)
	before := wqRead()
	for i := range 20 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", i)
	}
	wqMustQueue(t, before, "before the replicator's close")
	ref := walReference(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), closeBound)
	defer cancel()
	if err := e.r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := e.wqRestored(t, path)
	testutil.SameFile(t, got, ref)
	// Commits after the close are not replicated; nothing fails, and
	// nothing is queued for a tracker that is gone.
	b := wqRead()
	for i := range 10 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", i)
	}
	if n := wqRead().queued - b.queued; n != 0 {
		t.Errorf("%d commits were queued after the Replicator closed", n)
	}
}

// TestWALQueue_ConcurrentFlush: goroutines commit on several connections
// while Flush runs in a loop (run this one with -race).
func TestWALQueue_ConcurrentFlush(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "cf.db")
	setup := e.wqSeeded(t, path, 1500)
	mustExec(t, setup, "PRAGMA wal_autocheckpoint=100")
	e.checkWALReplica(t, path)
	before := wqRead()
	const writers, commits = 3, 150
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	done := make(chan struct{})
	for w := range writers {
		c := e.wqOpen(path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for i := range commits {
				q := "UPDATE t SET v=randomblob(100) WHERE id=?"
				arg := any(rng.IntN(400))
				if i%25 == 24 {
					q, arg = "INSERT INTO t(v) VALUES(randomblob(?))", any(100+rng.IntN(3000))
				}
				if _, err := c.Exec(q, arg); err != nil {
					errs <- fmt.Errorf("writer %d commit %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	var fg sync.WaitGroup
	fg.Add(1)
	go func() {
		defer fg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := e.r.Flush(context.Background()); err != nil {
				errs <- fmt.Errorf("flush: %w", err)
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	fg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	e.checkWALReplica(t, path)
	wqMustQueue(t, before, "concurrent flush")
}

// TestWALQueue_DrainRacesSlowPath: enough queued commits to pass the
// background drain's threshold (256 KiB) many times, with slow-path
// commits (new chunks, checkpoints) from another connection interleaved.
func TestWALQueue_DrainRacesSlowPath(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "d.db")
	a, b := e.wqOpen(path), e.wqOpen(path)
	wqWAL(t, a)
	wqSeed(t, a, 3000)
	mustExec(t, a, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, b, "PRAGMA wal_autocheckpoint=0")
	e.checkWALReplica(t, path)
	before := wqRead()
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range 1500 {
		// About 5 pages a commit (4 KiB each): 256 KiB every ~12 commits.
		mustExec(t, a, "UPDATE t SET v=randomblob(100) WHERE id IN (?,?,?,?)", rng.IntN(3000), rng.IntN(3000), rng.IntN(3000), rng.IntN(3000))
		switch {
		case i%97 == 96:
			mustExec(t, b, "INSERT INTO t(v) VALUES(randomblob(30000))")
		case i%211 == 210:
			mustExec(t, b, "PRAGMA wal_checkpoint(TRUNCATE)")
		case i%307 == 306:
			e.checkWALReplica(t, path)
		}
	}
	e.checkWALReplica(t, path)
	wqMustQueue(t, before, "drain")
}

// TestWALQueue_JournalModeSwitches: commits queued, then the journal mode
// switched to DELETE and back, and locking_mode=EXCLUSIVE switched on and
// off, with commits between.
func TestWALQueue_JournalModeSwitches(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "j.db")
	v := e.wqSeeded(t, path, 800)
	e.checkWALReplica(t, path)
	before := wqRead()
	rng := rand.New(rand.NewPCG(4, 4))
	upd := func(n int) {
		for range n {
			mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(300))
		}
	}
	var mode string
	for round := range 6 {
		upd(6)
		switch round % 3 {
		case 0:
			if err := v.QueryRow("PRAGMA journal_mode=DELETE").Scan(&mode); err != nil || mode != "delete" {
				t.Fatalf("journal_mode=DELETE: %q %v", mode, err)
			}
			upd(3)
			e.checkReplica(path)
			wqWAL(t, v)
		case 1:
			mustExec(t, v, "PRAGMA locking_mode=EXCLUSIVE")
			upd(5)
			e.checkWALReplica(t, path)
			upd(3)
			mustExec(t, v, "PRAGMA locking_mode=NORMAL")
			upd(4)
		case 2:
			upd(2)
			e.checkWALReplica(t, path)
			upd(6)
		}
		e.checkWALReplica(t, path)
	}
	wqMustQueue(t, before, "journal mode switches")
}

// TestWALQueue_HostileWALTruncate: the -wal is cut behind SQLite's back
// between queued commits (then, in a second phase, cut and extended back
// to its size, which leaves a hole the VFS's check cannot see). The
// replica must be either the state SQLite committed last or the
// checkpointed reference of what is in the files, never a mix.
func TestWALQueue_HostileWALTruncate(t *testing.T) {
	for _, extend := range []bool{false, true} {
		t.Run(fmt.Sprintf("extend=%v", extend), func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "h.db")
			v := e.wqSeeded(t, path, 800)
			mustExec(t, v, "PRAGMA wal_autocheckpoint=0")
			e.checkWALReplica(t, path)
			states := map[string]string{"last flushed": wqDumpDB(t, v, -1)}
			before := wqRead()
			for i := range 6 {
				mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", i)
			}
			wqMustQueue(t, before, "before the cut")
			fi, err := os.Stat(path + "-wal")
			if err != nil {
				t.Fatal(err)
			}
			cut := fi.Size() / 2
			states["queued"] = wqDumpDB(t, v, -1)
			// The state SQLite commits last, by content: the rows before
			// the cut, with row 7 set to a known value.
			states["last commit"] = wqDumpDB(t, v, 7)
			if err := os.Truncate(path+"-wal", cut); err != nil {
				t.Fatal(err)
			}
			if extend {
				if err := os.Truncate(path+"-wal", fi.Size()); err != nil {
					t.Fatal(err)
				}
			}
			b2 := wqRead()
			mustExec(t, v, "UPDATE t SET v=zeroblob(100) WHERE id=?", 7)
			a2 := wqRead()
			t.Logf("the commit after the cut: queued %d", a2.queued-b2.queued)
			states["cut reference"] = wqDump(t, walReference(t, path))
			if err := e.r.Flush(context.Background()); err != nil {
				t.Logf("flush: %v", err) // hostile: a flush may fail
			}
			got := wqDump(t, e.wqRestored(t, path))
			for name, s := range states {
				if s == got {
					t.Logf("the replica is the %s state", name)
					return
				}
			}
			t.Fatalf("the replica is none of the allowed states: %.200s", got)
		})
	}
}

// wqDump returns the rows of t in a file (ordered), or the error.
func wqDump(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&mode=ro")
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, hex(v) FROM t ORDER BY id")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var s []byte
	for rows.Next() {
		var id int
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			return err.Error()
		}
		s = fmt.Appendf(s, "%d:%s\n", id, v)
	}
	if err := rows.Err(); err != nil {
		return err.Error()
	}
	return string(s)
}

// wqDumpDB is wqDump of the rows db reads, with row set's value replaced
// by zeroblob(100).
func wqDumpDB(t *testing.T, db *sql.DB, set int) string {
	t.Helper()
	rows, err := db.Query("SELECT id, hex(CASE WHEN id=? THEN zeroblob(100) ELSE v END) FROM t ORDER BY id", set)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var s []byte
	for rows.Next() {
		var id int
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		s = fmt.Appendf(s, "%d:%s\n", id, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return string(s)
}

// TestWALQueue_CutWALIsNotApplied: commits are queued, the -wal is cut
// behind SQLite's back inside their frames, and one more commit is written
// past the cut end (a hole of zeros). Its frames and the queued ones
// validate in memory, but the -wal no longer holds them: the queue is not
// applied (internal/tracker/walqueue.go, walHoldsQueue), the flush fails
// (committed but not captured), and the replica stays the last flushed
// state, never a state built from frames the file lost.
func TestWALQueue_CutWALIsNotApplied(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "cut.db")
	v := e.wqSeeded(t, path, 200)
	mustExec(t, v, "PRAGMA wal_autocheckpoint=0")
	e.checkWALReplica(t, path)
	flushed := e.wqRestored(t, path)
	before := wqRead()
	for i := range 4 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", i)
	}
	wqMustQueue(t, before, "before the cut")
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// Cut inside the frames of the queued commits.
	if err := os.Truncate(path+"-wal", fi.Size()-5000); err != nil {
		t.Fatal(err)
	}
	b := wqRead()
	mustExec(t, v, "UPDATE t SET v=zeroblob(100) WHERE id=?", 5)
	if err := e.r.Flush(context.Background()); err == nil {
		t.Fatal("flush succeeded although the queued commits could not be applied")
	}
	if d := wqRead().discarded - b.discarded; d == 0 {
		t.Fatal("the queue was applied")
	}
	if got, want := testutil.FileSHA256(t, e.wqRestored(t, path)), testutil.FileSHA256(t, flushed); got != want {
		t.Fatal("the replica is not the last flushed state")
	}
}

// TestWALQueue_ReplicatorCloseWithQueueEnabled: the Replicator is closed
// right after a capture enabled the queue (nothing queued yet); commits
// after the close must not be queued for the tracker that is gone (they
// would accumulate, up to the queue's limit, until the connection closes).
func TestWALQueue_ReplicatorCloseWithQueueEnabled(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "rce.db")
	v := e.wqSeeded(t, path, 500)
	e.checkWALReplica(t, path)
	before := wqRead()
	for i := range 3 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", i)
	}
	wqMustQueue(t, before, "before")
	// The flush takes the queue; the capture of the next commit enables
	// it again.
	e.checkWALReplica(t, path)
	mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", 9)
	ctx, cancel := context.WithTimeout(context.Background(), closeBound)
	defer cancel()
	if err := e.r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b := wqRead()
	for i := range 10 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", i)
	}
	if n := wqRead().queued - b.queued; n != 0 {
		t.Errorf("%d commits were queued after the Replicator closed", n)
	}
}

// TestWALQueue_GrowAfterShrink: a VACUUM shrinks the database by many
// chunks (the capture leaves empty copies of the chunks past the new end,
// which the queue may allow); commits queued after it grow the database
// back into those chunks.
func TestWALQueue_GrowAfterShrink(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "gs.db")
	v := e.wqSeeded(t, path, 6000) // about 700 KiB: 11 chunks
	mustExec(t, v, "PRAGMA wal_autocheckpoint=0")
	e.checkWALReplica(t, path)
	before := wqRead()
	for round := range 3 {
		mustExec(t, v, "DELETE FROM t WHERE id>=?", 500)
		mustExec(t, v, "VACUUM")
		for i := range 120 {
			mustExec(t, v, "INSERT INTO t(id, v) VALUES(?, randomblob(?))", 500+i, 100+(i%7)*400)
			if i%5 == 0 {
				mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", i)
			}
			if i%23 == 22 {
				e.checkWALReplica(t, path)
			}
		}
		e.checkWALReplica(t, path)
		t.Logf("round %d", round)
	}
	wqMustQueue(t, before, "grow after shrink")
}

// TestWALQueue_MixedRandom: two verneuil connections and a plain unix one
// on one database: random updates, inserts, deletes, checkpoints of every
// kind, foreign commits; after a commit through the VFS the flushed
// replica is the reference.
func TestWALQueue_MixedRandom(t *testing.T) {
	for _, seed := range []uint64{11, 12, 13} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "m.db")
			vs := []*sql.DB{e.wqOpen(path), e.wqOpen(path)}
			wqWAL(t, vs[0])
			wqSeed(t, vs[0], 1200)
			u := wqUnix(t, path)
			mustExec(t, vs[1], "PRAGMA wal_autocheckpoint=30")
			e.checkWALReplica(t, path)
			before := wqRead()
			rng := rand.New(rand.NewPCG(seed, seed))
			modes := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
			for i := range 500 {
				c := vs[rng.IntN(2)]
				if rng.IntN(15) == 0 {
					c = u
				}
				switch r := rng.IntN(40); {
				case r == 0:
					mustExec(t, c, "PRAGMA wal_checkpoint("+modes[rng.IntN(4)]+")")
				case r < 3:
					mustExec(t, c, "INSERT INTO t(v) VALUES(randomblob(?))", 20+rng.IntN(6000))
				case r < 5:
					mustExec(t, c, "DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 3)")
				case r < 7:
					tx, err := c.Begin()
					if err != nil {
						t.Fatal(err)
					}
					for range 2 + rng.IntN(5) {
						mustExec(t, tx, "UPDATE t SET v=randomblob(length(v)) WHERE id=?", rng.IntN(1200))
					}
					if rng.IntN(4) == 0 {
						tx.Rollback()
					} else if err := tx.Commit(); err != nil {
						t.Fatal(err)
					}
				default:
					mustExec(t, c, "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(400))
				}
				if i%41 == 40 {
					mustExec(t, vs[0], "UPDATE t SET v=randomblob(100) WHERE id=?", rng.IntN(400))
					e.checkWALReplica(t, path)
				}
			}
			mustExec(t, vs[1], "UPDATE t SET v=randomblob(100) WHERE id=1")
			e.checkWALReplica(t, path)
			wqMustQueue(t, before, "mixed")
		})
	}
}
