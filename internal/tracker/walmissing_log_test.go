package tracker

import (
	"errors"
	"log/slog"
	"os"
	"testing"
)

// A -wal deleted (or renamed) while connections keep it open: SQLite goes
// on committing to the file it opened, which the capture cannot read by
// its path. The first such commit is logged at WARN, the following ones
// at DEBUG only, never at ERROR; each is reported to Flush. Once a -wal is
// at the path again, the next commit is captured (a rescan) and holds the
// committed state; the next disappearance is logged again.
func TestWALMissingLoggedOncePerEpisode(t *testing.T) {
	f := newWALFixture(t)
	w := newTestWAL(1024, [8]byte{4, 4, 4, 4, 2, 2, 2, 2})
	w.commit(2, map[uint32]byte{1: 0, 2: 10})
	write := func() {
		if err := os.WriteFile(f.walPath, w.wal, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write()
	f.release(nil, w.indexHeader())
	if err := f.db.lastErrForTest(); err != nil {
		t.Fatalf("first capture: %v", err)
	}
	for episode := 1; episode <= 2; episode++ {
		if err := os.Remove(f.walPath); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			prior := w.indexHeader()
			w.commit(3, map[uint32]byte{2: byte(20 + i), 3: byte(30 + i)})
			f.release(prior, w.indexHeader())
			if err := f.db.lastErrForTest(); !errors.Is(err, ErrWALMissing) {
				t.Fatalf("episode %d, commit %d without a -wal: capture error %v, want ErrWALMissing", episode, i, err)
			}
		}
		if n := f.logs.count(slog.LevelWarn); n != episode {
			t.Fatalf("episode %d: %d WARN records in all, want %d (one per episode)", episode, n, episode)
		}
		if n := f.logs.count(slog.LevelError); n != 0 {
			t.Fatalf("episode %d: %d ERROR records for a missing -wal", episode, n)
		}
		if err := f.db.Flush(t.Context()); !errors.Is(err, ErrWALMissing) {
			t.Fatalf("episode %d: flush: %v, want ErrWALMissing reported", episode, err)
		}
		// The -wal is at its path again (the connections reopened it).
		write()
		prior := w.indexHeader()
		w.commit(3, map[uint32]byte{1: byte(40 + episode)})
		write()
		f.release(prior, w.indexHeader())
		if err := f.db.lastErrForTest(); err != nil {
			t.Fatalf("episode %d: capture with the -wal back: %v", episode, err)
		}
		f.checkSpool(t, w.state(f.file.data))
	}
}
