package copier

import (
	"context"
	"testing"
	"time"
)

// TestFlushWhileWaitingForHistoryKeepsSignals: a database published as
// latest only waits in the scheduler for its deferred history object; a
// flush then writes that object. The next commit's signal must still
// schedule an upload at once: the flush used to clear the "waiting for
// history" mark, so the signal was ignored and the version waited for
// the history interval (here an hour; 10 s by default).
func TestFlushWhileWaitingForHistoryKeepsSignals(t *testing.T) {
	for _, inline := range []int{-1, 0} {
		s := newMemStore()
		db := newInlineDB(t, s, "sig", func(o *Options) { o.InlineChunks = inline })
		db.commit(2) // latest only: waits for its history object
		if err := db.c.Upload(context.Background(), K("sig")); err != nil {
			t.Fatal(err)
		}
		if !hasHistory(s, K("sig"), db.seq) {
			t.Fatal("the flush did not write the history object")
		}
		began := time.Now()
		db.commit(3) // fails after 10 s without the fix
		db.latest()
		t.Logf("inline %d: the version after the flush took %v", inline, time.Since(began).Round(time.Millisecond))
	}
}
