package copier

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// TestInline_FailuresAndRestartDuringCommits: commits keep coming (one to
// five changed chunks each, so some versions carry chunks inline and some
// go over the bound) while about a third of the store's writes fail, and
// halfway the copier dies (no flush) and another starts on the same
// spool with commits still coming. Every latest a reader finds restores
// the state staged under its number, no stored manifest ever lacks a
// chunk, and once the failures stop a flush leaves the last state in
// history.
func TestInline_FailuresAndRestartDuringCommits(t *testing.T) {
	s := newMemStore()
	db := newInlineDB(t, s, "adv") // history objects by flushes below
	states := map[uint64][]byte{db.seq: append([]byte(nil), db.data...)}
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(7, 8))
	fr := rand.New(rand.NewPCG(9, 10))
	s.setFail(func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		if (op == "put" || op == "putif") && fr.IntN(3) == 0 {
			return fmt.Errorf("%s %s: injected: %w", op, key, errors.New("503 slow down"))
		}
		return nil
	})
	inlined := 0
	check := func() {
		t.Helper()
		m, err := restore.Latest(context.Background(), s, K("adv"))
		if err != nil {
			t.Fatalf("latest: %v", err)
		}
		if len(m.Inline) > 0 {
			inlined++
		}
		want, ok := states[m.Seq]
		if !ok {
			t.Fatalf("latest is version %d, which was never staged", m.Seq)
		}
		restoreEquals(t, s, m, want)
		if missing, _ := gctest.Missing(t, s); len(missing) > 0 {
			t.Fatalf("at latest %d: stored manifests lack chunks: %v", m.Seq, missing)
		}
	}
	for i := range 40 {
		if i == 20 {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = db.c.Close(ctx) // dies mid-stream
			c2, _ := newTestCopier(t, s, func(o *Options) {
				o.SpoolDir = db.root
				o.HistoryInterval = time.Hour
				o.Interval = 10 * time.Millisecond
			})
			db.c = c2
		}
		db.seq++
		db.data[27] = byte(db.seq)
		n := 1 + r.IntN(2)
		if i%7 == 6 {
			n = 5
		}
		for range n {
			c := 1 + r.IntN(7)
			db.data[c*testChunk+r.IntN(testChunk)] ^= byte(i + 1)
		}
		stageNamed(t, db.root, K("adv"), "test:adv", db.seq, db.data)
		states[db.seq] = append([]byte(nil), db.data...)
		db.c.Notify(K("adv"))
		time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
		if i%6 == 5 {
			// A flush: its history object (a new delta base). A short
			// history interval instead wrote every version to history
			// under -race on a loaded machine (each check outlasted it):
			// no latest carried inline chunks. The injected failures may
			// make it fail.
			if err := db.c.Upload(context.Background(), K("adv")); err != nil {
				t.Logf("flush after version %d: %v", db.seq, err)
			}
		}
		check()
	}
	if inlined == 0 {
		t.Fatal("no latest carried inline chunks: the test exercised nothing new")
	}
	t.Logf("%d of 40 checks found inline chunks in latest", inlined)
	s.setFail(nil)
	if err := db.c.Upload(context.Background(), K("adv")); err != nil {
		t.Fatal(err)
	}
	check()
	if !hasHistory(s, K("adv"), db.seq) {
		t.Fatal("the flush left the last version out of history")
	}
	restoreEquals(t, s, mustVersion(t, s, K("adv"), db.seq), db.data)
	seqs, _, err := restore.History(context.Background(), s, K("adv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range seqs {
		restoreEquals(t, s, mustVersion(t, s, K("adv"), seq), states[seq])
	}
	if len(s.regress) > 0 {
		t.Fatalf("latest went back: %s", strings.Join(s.regress, "; "))
	}
}
