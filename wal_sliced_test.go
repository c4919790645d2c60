package verneuil_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// TestWALSlicedRescan: a WAL capture that must rescan (after a restart of
// the WAL and a commit by a connection that bypasses the VFS) copies the
// 8 MiB state in slices after the capture, while two connections through
// verneuil keep committing and a bypassing connection runs checkpoints
// (PASSIVE and FULL; with RESTART and TRUNCATE too in the second case,
// which abandon a copy for a rescan under the write lock; with commits
// of its own in the third, whose pages a checkpoint may copy into the
// file during the copy). Each round ends byte for byte equal to the
// checkpointed reference.
//
// Where a copy must be installed, a reader through the unix VFS opens a
// read transaction as soon as the round's copy has started and keeps it
// until the round ends: checkpoints still copy pages of later commits
// into the file during the copy, but no writer can restart the WAL under
// it (a restart abandons the copy, which is right but is not what that
// case tests). Such a case runs up to 6 rounds until a copy is installed.
func TestWALSlicedRescan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kinds  []string
		wantOK bool // some sliced copy must be installed
		bypass bool // the checkpointer commits rows too
	}{
		{"passive and full checkpoints", []string{"PASSIVE", "FULL"}, true, false},
		{"every checkpoint kind", []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}, false, false},
		{"bypassing commits and checkpoints", []string{"PASSIVE", "FULL"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dir, "sliced-wal.db")
			plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=WAL&_busy_timeout=10000")
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			plain.SetMaxOpenConns(1)
			mustExec(t, plain, "PRAGMA wal_autocheckpoint=0")
			mustExec(t, plain, "CREATE TABLE big(v BLOB)")
			mustExec(t, plain, "CREATE TABLE t(id INTEGER PRIMARY KEY, w INTEGER, v BLOB)")
			mustExec(t, plain, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 128) INSERT INTO big(v) SELECT randomblob(65536) FROM s")
			var writers []*sql.DB
			for range 2 {
				db := e.open(path, "_busy_timeout=10000")
				db.SetMaxOpenConns(1)
				mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
				writers = append(writers, db)
			}
			mustExec(t, writers[0], "INSERT INTO t(w, v) VALUES(-1, randomblob(100))")
			// That first capture through verneuil rescans too: let it end
			// before the rounds truncate the WAL under it.
			if err := e.r.Flush(context.Background()); err != nil && !errors.Is(err, tracker.ErrDeferred) {
				t.Fatalf("flush: %v", err)
			}
			reader, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_busy_timeout=10000")
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close()
			s0, d0, _ := tracker.WALSlicedCounts()
			installed := func() bool { _, d, _ := tracker.WALSlicedCounts(); return d > d0 }
			for round := 0; round < 3 || (tc.wantOK && round < 6 && !installed()); round++ {
				// An unwitnessed restart and a bypassing commit: the next
				// capture through verneuil must rescan.
				mustExec(t, plain, "PRAGMA wal_checkpoint(TRUNCATE)")
				mustExec(t, plain, "INSERT INTO t(w, v) VALUES(-2, randomblob(5000))")
				var stop atomic.Bool
				var wg sync.WaitGroup
				errs := make(chan error, len(writers)+2)
				if tc.wantOK {
					sr, _, _ := tracker.WALSlicedCounts()
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := holdReadWhileCopying(reader, sr, &stop); err != nil {
							errs <- err
						}
					}()
				}
				for i, db := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := 0; j < 40 && !stop.Load(); j++ {
							if _, err := db.Exec("INSERT INTO t(w, v) VALUES(?, randomblob(?))", i, 100+j*50); err != nil {
								errs <- fmt.Errorf("writer %d: %w", i, err)
								return
							}
							if j%10 == 9 {
								if _, err := db.Exec("UPDATE big SET v = randomblob(65536) WHERE rowid = ?", 1+(round*40+j+i*7)%128); err != nil {
									errs <- fmt.Errorf("writer %d: %w", i, err)
									return
								}
							}
						}
					}()
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 0; !stop.Load(); k++ {
						plain.Exec("PRAGMA wal_checkpoint(" + tc.kinds[k%len(tc.kinds)] + ")") // busy is fine
						if tc.bypass && k%3 == 0 {
							plain.Exec("UPDATE big SET v = randomblob(65536) WHERE rowid = ?", 1+k%128)
						}
						time.Sleep(2 * time.Millisecond)
					}
				}()
				// The checkpointer runs until both writers are done.
				go func() {
					for {
						time.Sleep(5 * time.Millisecond)
						if len(errs) > 0 {
							break
						}
						var n int
						if plain.QueryRow("SELECT count(*) FROM t WHERE w >= 0").Scan(&n) == nil && n >= (round+1)*80 {
							break
						}
					}
					stop.Store(true)
				}()
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				// Bypassing commits reach the replica at the next
				// capture through the VFS; a flush after an abandoned
				// copy says so (ErrDeferred), and the next commit
				// rescans.
				for attempt := 0; ; attempt++ {
					mustExec(t, writers[1], "INSERT INTO t(w, v) VALUES(-3, randomblob(100))")
					err := e.r.Flush(context.Background())
					if err == nil {
						break
					}
					if !errors.Is(err, tracker.ErrDeferred) || attempt == 3 {
						t.Fatalf("flush: %v", err)
					}
				}
				e.checkWALReplica(t, path)
			}
			s1, d1, a1 := tracker.WALSlicedCounts()
			t.Logf("sliced WAL copies: %d started, %d installed (%d abandoned in all)", s1-s0, d1-d0, a1)
			if s1 == s0 {
				t.Fatalf("no capture started a sliced WAL copy")
			}
			if tc.wantOK && d1 == d0 {
				t.Fatalf("no sliced WAL copy was installed")
			}
			for _, db := range writers {
				db.Close()
			}
		})
	}
}

// TestWALSlicedRescan_RestartDuringCopy: replication is restarted (Close,
// Start) right after a commit started a sliced WAL copy, with the
// connection still open: Close waits for the copy and publishes it; a
// connection opened after the restart commits, and the replica is the
// checkpointed reference.
func TestWALSlicedRescan_RestartDuringCopy(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "restart-sliced.db")
	plain, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=WAL&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetMaxOpenConns(1)
	mustExec(t, plain, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, plain, "CREATE TABLE big(v BLOB)")
	mustExec(t, plain, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 160) INSERT INTO big(v) SELECT randomblob(65536) FROM s")
	old := e.open(path, "_busy_timeout=10000")
	old.SetMaxOpenConns(1)
	mustExec(t, old, "PRAGMA wal_autocheckpoint=0")
	s0, _, _ := tracker.WALSlicedCounts()
	mustExec(t, old, "INSERT INTO big(v) VALUES(randomblob(100))") // rescans: sliced
	if s1, _, _ := tracker.WALSlicedCounts(); s1 == s0 {
		t.Fatalf("the first commit did not start a sliced WAL copy")
	}
	e.restartReplicator(t)
	db := e.open(path, "_busy_timeout=10000")
	mustExec(t, db, "INSERT INTO big(v) VALUES(randomblob(200))")
	e.checkWALReplica(t, path)
	db.Close()
	old.Close()
}

// holdReadWhileCopying opens a read transaction on db as soon as a sliced
// WAL copy has started (the started count passes since) and keeps it until
// that copy ends (installed or abandoned) or stop: no writer restarts the
// WAL meanwhile. Holding it longer would make FULL checkpoints, which wait
// for readers while holding the write lock, stall the writers.
func holdReadWhileCopying(db *sql.DB, since int64, stop *atomic.Bool) error {
	var ended int64
	for {
		if stop.Load() {
			return nil
		}
		s, d, a := tracker.WALSlicedCounts()
		if s > since {
			ended = d + a
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("reader: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		return fmt.Errorf("reader: %w", err)
	}
	for !stop.Load() {
		if _, d, a := tracker.WALSlicedCounts(); d+a > ended {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
