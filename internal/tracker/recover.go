package tracker

import (
	"fmt"
	"runtime/debug"
)

// buildRecovering is build with a panic turned into a failed build: the
// stack is logged, the identity forgotten (so the next capture rescans)
// and the host process lives on.
func (db *DB) buildRecovering() (err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		db.log.Error("recovered a panic while building a manifest", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		err = fmt.Errorf("build manifest: panic: %v", p)
		// The panic may have left db.mu held (it is released without
		// defer on some paths): never wait for it.
		if db.mu.TryLock() {
			db.lastID = nil
			db.lastErr = err
			db.mu.Unlock()
		}
	}()
	return db.build()
}
