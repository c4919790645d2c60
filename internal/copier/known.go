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
// grace period is shorter than ttl) could be wrongly skipped. A chunk
// uploaded in a pack is remembered with its location, which a later
// version referencing it reuses instead of uploading it again.
type knownSet struct {
	mu        sync.Mutex
	limit     int
	ttl       time.Duration
	cur       map[manifest.Hash]*manifest.Location // nil: a chunks/HASH object
	prev      map[manifest.Hash]*manifest.Location
	curSince  time.Time // no entry of cur is older
	prevSince time.Time // no entry of prev is older
}

func newKnownSet(limit int, ttl time.Duration) *knownSet {
	return &knownSet{limit: max(limit, 2), ttl: ttl, cur: map[manifest.Hash]*manifest.Location{}, curSince: time.Now()}
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
	k.cur = make(map[manifest.Hash]*manifest.Location, min(len(k.cur), k.limit/2))
	k.curSince = now
}

// has reports whether h is known present, and where: in a pack (loc not
// nil) or as its own object.
func (k *knownSet) has(h manifest.Hash) (loc *manifest.Location, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	k.rotateLocked(now)
	if loc, ok := k.cur[h]; ok {
		return loc, true
	}
	if now.Sub(k.prevSince) >= k.ttl {
		k.prev = nil
	}
	loc, ok = k.prev[h]
	return loc, ok
}

// add records h as present in every target as its own object (loc nil)
// or in a pack at loc.
func (k *knownSet) add(h manifest.Hash, loc *manifest.Location) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rotateLocked(time.Now())
	k.cur[h] = loc
}

// len returns the number of entries held.
func (k *knownSet) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.cur) + len(k.prev)
}
