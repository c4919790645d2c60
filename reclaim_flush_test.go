package verneuil_test

import (
	"context"
	"os"
	"testing"
)

// TestFlushAfterReclaim: flushing a database whose file was deleted and
// whose spool a daemon reclaimed (so everything it committed is uploaded)
// succeeds, with the connection still open (Flush, FlushDB) or closed
// (Flush). A flush failed there with "the spool was removed", failing the
// whole process's Flush for a database fully replicated.
func TestFlushAfterReclaim(t *testing.T) {
	for _, open := range []bool{true, false} {
		t.Run(map[bool]string{true: "open", false: "closed"}[open], func(t *testing.T) {
			e := newEnv(t)
			p, key, db := openReplicated(t, e, "flushed.db", 3, 10000)
			if !open {
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if !reclaimNow(t, e, key) {
				t.Fatal("not reclaimed")
			}
			ctx := context.Background()
			if err := e.r.FlushDB(ctx, p); open && err != nil {
				// Closed, the path names nothing this process knows.
				t.Errorf("FlushDB of a reclaimed, uploaded database: %v", err)
			}
			if err := e.r.Flush(ctx); err != nil {
				t.Errorf("Flush with a reclaimed, uploaded database: %v", err)
			}
		})
	}
}
