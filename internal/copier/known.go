package copier

import (
	"sync"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// knownSet remembers chunks known to be present in every target, so that
// they are not uploaded (or checked) again. Memory is bounded: entries live
// in two generations of at most limit/2 each; when the current generation
// fills up or grows older than ttl/2 it becomes the previous one and the
// old previous one is dropped. An entry is trusted for at most ttl after it
// was recorded (uploaded or confirmed with a request), which bounds how long
// a chunk deleted from the store behind the copier's back (by a gc whose
// grace period is shorter than ttl) could be wrongly skipped.
type knownSet struct {
	mu        sync.Mutex
	limit     int
	ttl       time.Duration
	cur       map[manifest.Hash]struct{}
	prev      map[manifest.Hash]struct{}
	curSince  time.Time // no entry of cur is older
	prevSince time.Time // no entry of prev is older
}

func newKnownSet(limit int, ttl time.Duration) *knownSet {
	return &knownSet{limit: max(limit, 2), ttl: ttl, cur: map[manifest.Hash]struct{}{}, curSince: time.Now()}
}

func (k *knownSet) rotateLocked(now time.Time) {
	if len(k.cur) < k.limit/2 && now.Sub(k.curSince) < k.ttl/2 {
		return
	}
	if now.Sub(k.curSince) >= k.ttl {
		k.prev = nil // even the current generation is too old to trust
	} else {
		k.prev, k.prevSince = k.cur, k.curSince
	}
	k.cur = make(map[manifest.Hash]struct{}, min(len(k.cur), k.limit/2))
	k.curSince = now
}

// has reports whether h is known present.
func (k *knownSet) has(h manifest.Hash) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	k.rotateLocked(now)
	if _, ok := k.cur[h]; ok {
		return true
	}
	if now.Sub(k.prevSince) >= k.ttl {
		k.prev = nil
	}
	_, ok := k.prev[h]
	return ok
}

// add records h as present in every target.
func (k *knownSet) add(h manifest.Hash) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rotateLocked(time.Now())
	k.cur[h] = struct{}{}
}

// len returns the number of entries held.
func (k *knownSet) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.cur) + len(k.prev)
}
