package tracker

import (
	"strings"
	"testing"
	"time"
)

// TestRegression_BuilderRecoversPanics: a panic while building a manifest
// in a background builder fails that build (the identity is forgotten, so
// the next capture rescans) and the host process lives on.
func TestRegression_BuilderRecoversPanics(t *testing.T) {
	m := New(Options{SpoolDir: t.TempDir(), Builders: 1})
	m.Start()
	defer m.Close(t.Context())
	// No spool: building dereferences nil, as a bug would.
	db := &DB{m: m, log: m.log, key: "broken", lastID: []byte("id"), baseID: []byte("base"),
		pending: &pending{chunks: map[uint32][]byte{0: make([]byte, 100)}, length: 100, seq: 1}}
	db.queued.Store(true)
	m.work <- db
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.mu.Lock()
		err, id := db.lastErr, db.lastID
		db.mu.Unlock()
		if err != nil {
			if !strings.Contains(err.Error(), "panic") || id != nil {
				t.Fatalf("after the panic: lastErr %v, lastID %q", err, id)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed build was never recorded")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
