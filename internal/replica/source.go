package replica

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// Source is one replicated database (with its pin) in a process, shared
// by all its connections. Its current version only moves forward.
type Source struct {
	mgr    *Manager
	target Target
	id     uint64
	refs   int // under mgr.mu

	// refreshMu serialises refresh checks; mu guards the fields below.
	refreshMu sync.Mutex
	mu        sync.Mutex
	cur       *manifest.Manifest
	tag       string
	lastCheck time.Time
	lastErr   error
	errSince  time.Time
	failures  int       // failed checks since errSince
	warnedAt  time.Time // last warning of the failures
	// behindWarnedAt: last warning of a latest older than cur.
	behindWarnedAt time.Time
	held           map[uint64]*held
	// bases holds the base of the last delta manifest resolved.
	bases restore.BaseCache

	// Readahead state: the last chunk missed, the end of the window
	// fetched ahead of it, the next window's size, and the scan (raGen
	// changes when a miss is not forward: a new scan starts).
	raMu     sync.Mutex
	lastMiss int
	raEnd    int
	raSeq    uint64
	raGen    uint64
	window   int
}

// held is a version that connections use (the VFS holds it while a
// connection's pinned version can read from it).
type held struct {
	m    *manifest.Manifest
	refs int
}

// ID is the source's handle, for Manager.Source.
func (s *Source) ID() uint64 { return s.id }

// What describes the source for messages.
func (s *Source) What() string { return s.target.What }

// Pinned reports whether the source is one fixed version.
func (s *Source) Pinned() bool { return s.target.pinned() }

// refreshWarnEvery: while a database's refresh keeps failing, one warning
// per interval (with the count of failures).
const refreshWarnEvery = time.Minute

// Status is a source's state.
type Status struct {
	Version    uint64
	CommitTime time.Time
	Length     int64
	ChunkSize  uint32
	LastCheck  time.Time
	// LastError is the error of the last refresh check when it failed
	// (since ErrorSince), nil after a success.
	LastError  error
	ErrorSince time.Time
	// Failures counts the failed checks since ErrorSince.
	Failures int
}

// Status returns the source's current version and refresh state.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{s.cur.Seq, s.cur.CommitTime, s.cur.Length, s.cur.ChunkSize, s.lastCheck, s.lastErr, s.errSince, s.failures}
}

// Current returns the current manifest, checking first for a newer version
// when the refresh interval has passed since the last check (or always
// with force). A check already running elsewhere is not waited for unless
// force is set. The returned error is the check's; the manifest is then the
// previous current one, which stays usable.
func (s *Source) Current(force bool) (*manifest.Manifest, error) {
	if s.target.pinned() {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cur, nil
	}
	if force {
		s.refreshMu.Lock()
	} else if !s.refreshMu.TryLock() {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cur, nil
	}
	defer s.refreshMu.Unlock()
	s.mu.Lock()
	cur, tag, last := s.cur, s.tag, s.lastCheck
	s.mu.Unlock()
	if !force && time.Since(last) < s.mgr.opts.RefreshInterval {
		return cur, nil
	}
	m, newTag, err := s.check(tag)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastCheck = time.Now()
	if err != nil {
		if s.lastErr == nil {
			s.errSince, s.failures, s.warnedAt = s.lastCheck, 0, time.Time{}
		}
		s.lastErr = err
		s.failures++
		s.mgr.stats.refreshErrors.Add(1)
		// The first failure, then one line per refreshWarnEvery (a check
		// runs every interval while connections read).
		if s.warnedAt.IsZero() || s.lastCheck.Sub(s.warnedAt) >= refreshWarnEvery {
			s.warnedAt = s.lastCheck
			s.mgr.log.Warn("snapshot: refresh failed; reading the version already loaded",
				"db", s.target.What, "version", s.cur.Seq, "lag", time.Since(s.cur.CommitTime).Round(time.Millisecond),
				"failures", s.failures, "failing_since", s.errSince.UTC().Format(time.RFC3339), "err", err)
		}
		return s.cur, err
	}
	if s.lastErr != nil {
		s.mgr.log.Info("snapshot: refresh works again", "db", s.target.What,
			"failures", s.failures, "failed_for", s.lastCheck.Sub(s.errSince).Round(time.Millisecond))
	}
	s.lastErr, s.failures = nil, 0
	if m != nil {
		s.tag = newTag
		if m.Seq > s.cur.Seq { // never backwards
			s.cur = m
		} else if m.Seq < s.cur.Seq && (s.behindWarnedAt.IsZero() || s.lastCheck.Sub(s.behindWarnedAt) >= refreshWarnEvery) {
			// Loaded once per change of latest, logged at most once per
			// refreshWarnEvery (a writer committing every second).
			s.behindWarnedAt = s.lastCheck
			s.mgr.log.Warn("snapshot: the store's latest version is older than the version read; keeping it until a newer one",
				"db", s.target.What, "version", s.cur.Seq, "latest", m.Seq)
		}
	}
	return s.cur, nil
}

// check asks the store whether latest changed since tag and loads it when
// it did, in one conditional GET (and the delta's base when it is not the
// one resolved last); (nil, tag, nil) means unchanged.
func (s *Source) check(tag string) (*manifest.Manifest, string, error) {
	ctx, cancel := s.mgr.ctx()
	defer cancel()
	s.mgr.stats.tagChecks.Add(1)
	m, newTag, err := restore.LatestTagged(ctx, s.mgr.opts.Store, s.target.Key, tag, &s.bases)
	if errors.Is(err, blob.ErrNotModified) {
		return nil, tag, nil
	}
	if err != nil {
		return nil, tag, fmt.Errorf("check latest of %s: %w", s.target.What, err)
	}
	s.mgr.stats.manifestLoads.Add(1)
	return m, newTag, nil
}

// Release drops a hold taken by HoldCurrent.
func (s *Source) Release(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[seq]; h != nil {
		if h.refs--; h.refs <= 0 {
			delete(s.held, seq)
		}
	}
}

// Version returns held or current version seq.
func (s *Source) Version(seq uint64) (*manifest.Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[seq]; h != nil {
		return h.m, nil
	}
	if s.cur.Seq == seq {
		return s.cur, nil
	}
	return nil, fmt.Errorf("snapshot: version %d of %s is not held", seq, s.target.What)
}

// ReadChunk returns chunk i of version seq, verified: from the disk cache
// or the store (one fetch per chunk for concurrent callers), and starts
// readahead when chunks are missed in order.
func (s *Source) ReadChunk(seq uint64, i int) ([]byte, error) {
	m, err := s.Version(seq)
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= len(m.Chunks) {
		return nil, fmt.Errorf("snapshot: chunk %d out of range (version %d has %d)", i, seq, len(m.Chunks))
	}
	s.readahead(m, i)
	data, err := s.mgr.chunk(m, i, nil)
	if err != nil {
		return nil, fmt.Errorf("%s, version %d: %w", s.target.What, seq, err)
	}
	return data, nil
}

// readahead notes a miss on chunk i and, while misses move forward by
// less than a window (a scan; B-tree pages are mostly but not strictly in
// file order), keeps the next window of chunks fetched or in flight, in
// the background. Chunks fetched ahead wait in the manager's ahead buffer
// until missed, so every chunk of a scan is one miss and slides the window
// (which doubles from minWindow up to windowLimit chunks).
func (s *Source) readahead(m *manifest.Manifest, i int) {
	s.raMu.Lock()
	forward := m.Seq == s.raSeq && i > s.lastMiss && i <= s.lastMiss+1+max(s.window, 1)
	s.lastMiss, s.raSeq = i, m.Seq
	if !forward {
		s.window, s.raEnd = 0, i
		s.raGen++
		s.raMu.Unlock()
		return
	}
	s.window = min(max(2*s.window, minWindow), windowLimit(m.ChunkSize))
	from := max(i+1, s.raEnd+1)
	to := min(i+s.window, len(m.Chunks)-1)
	s.raEnd = max(s.raEnd, to)
	gen := s.raGen
	s.raMu.Unlock()
	if from <= to {
		s.mgr.bg.Add(1)
		go func() {
			defer s.mgr.bg.Done()
			s.mgr.prefetch(m, from, to, s, gen)
		}()
	}
}

// passed reports whether readahead of chunk i for scan gen is moot: the
// scan ended (a miss that was not forward), or its misses reached i (the
// reader read i itself, or skipped it). A chunk the reader fetched itself
// is then in no Go buffer (only in the VFS's memory cache, and on disk
// when the disk cache works): fetching it ahead would fetch it twice.
func (s *Source) passed(gen uint64, i int) bool {
	s.raMu.Lock()
	defer s.raMu.Unlock()
	return s.raGen != gen || s.lastMiss >= i
}

// aheadFetch is a fetch by readahead for scan gen of src; fetched is
// called once the store answered (it frees the readahead slot).
type aheadFetch struct {
	src     *Source
	gen     uint64
	fetched func()
}

// prefetch fetches chunks from..to of m for scan gen of src, at most
// opts.Readahead at once for the whole process, into the caches; it stops
// at the chunks the scan has passed (see Source.passed).
func (mg *Manager) prefetch(m *manifest.Manifest, from, to int, src *Source, gen uint64) {
	var wg sync.WaitGroup
	for j := from; j <= to; j++ {
		h := m.Chunks[j]
		if j == 0 || h == manifest.ZeroChunkHash(manifest.ChunkLen(j, m.Length, m.ChunkSize)) || m.Inline[h] != nil {
			continue
		}
		if (mg.opts.Mem != nil && mg.opts.Mem.Has(h)) || mg.hasAhead(h) || src.passed(gen, j) {
			continue
		}
		mg.sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			release := func() { once.Do(func() { <-mg.sem }) }
			defer release()
			defer func() {
				if r := recover(); r != nil {
					mg.log.Error("snapshot: panic in readahead (recovered)", "panic", r)
				}
			}()
			if _, err := mg.chunk(m, j, &aheadFetch{src, gen, release}); err != nil {
				mg.log.Debug("snapshot: readahead failed", "chunk", j, "err", err)
			}
		}()
	}
	wg.Wait()
}

// flight is one chunk being fetched; waiters read data and err after done.
type flight struct {
	done    chan struct{}
	data    []byte
	err     error
	waiters int // under flightMu
}

// chunk returns chunk i of m: the inline chunk 0, zeros, a chunk that m's
// object carries inline (held by m for as long as a reader pins it: the
// store may no longer have it once latest moved on), a chunk fetched
// ahead, the disk cache or one fetch from the store shared by concurrent
// callers. A fetch by readahead (ra not nil) fetches nothing once its scan
// passed the chunk (checked under flightMu, which a reader's miss takes
// after moving the scan: either the reader finds the readahead's flight or
// the readahead sees the miss), leaves the chunk in the ahead buffer and
// calls ra.fetched once the store answered (before the chunk is written to
// the disk cache, which happens after waiters are released).
func (mg *Manager) chunk(m *manifest.Manifest, i int, ra *aheadFetch) ([]byte, error) {
	ahead := ra != nil
	n := manifest.ChunkLen(i, m.Length, m.ChunkSize)
	h := m.Chunks[i]
	if i == 0 || h == manifest.ZeroChunkHash(n) || m.Inline[h] != nil {
		ctx, cancel := mg.ctx()
		defer cancel()
		return restore.Chunk(ctx, mg.opts.Store, m, i)
	}
	mg.flightMu.Lock()
	if ahead {
		if _, ok := mg.ahead[h]; ok || ra.src.passed(ra.gen, i) {
			mg.flightMu.Unlock()
			return nil, nil
		}
	} else if data, ok := mg.takeAhead(h); ok {
		mg.flightMu.Unlock()
		return data, nil
	}
	if data, ok := mg.pending[h]; ok { // fetched, on its way to the disk
		mg.flightMu.Unlock()
		if ahead {
			return nil, nil
		}
		return data, nil
	}
	if f := mg.flights[h]; f != nil {
		f.waiters++
		mg.flightMu.Unlock()
		mg.stats.mergedMisses.Add(1)
		<-f.done
		return f.data, f.err
	}
	f := &flight{done: make(chan struct{})}
	mg.flights[h] = f
	mg.flightMu.Unlock()
	finished := false
	// A panic below (a store client's bug) still ends the flight with an
	// error: its waiters, and every later reader of the chunk, would
	// otherwise wait forever. The panic goes on to the caller's recovery.
	defer func() {
		if finished {
			return
		}
		if r := recover(); r != nil {
			f.data, f.err = nil, fmt.Errorf("fetch chunk %d (%s): panic: %v", i, h, r)
			mg.flightMu.Lock()
			delete(mg.flights, h)
			mg.flightMu.Unlock()
			close(f.done)
			panic(r)
		}
	}()
	// A fetched chunk goes to the disk writer's queue (pending) as the
	// flight ends, so that nobody fetches it again before it is on disk.
	finish := func(fetched bool) {
		finished = true
		mg.flightMu.Lock()
		if ahead && f.err == nil && f.waiters == 0 {
			mg.putAhead(h, f.data)
		}
		if fetched && f.err == nil && mg.disk != nil {
			mg.queueDisk(h, f.data)
		}
		delete(mg.flights, h)
		mg.flightMu.Unlock()
		close(f.done)
	}
	if data, ok := mg.disk.get(h, n); ok {
		mg.stats.diskHits.Add(1)
		f.data = data
		finish(false)
		return data, nil
	}
	ctx, cancel := mg.ctx()
	defer cancel()
	mg.stats.chunkFetches.Add(1)
	f.data, f.err = restore.Chunk(ctx, mg.opts.Store, m, i)
	if ahead && ra.fetched != nil {
		ra.fetched()
	}
	finish(true)
	if f.err != nil {
		mg.stats.chunkErrors.Add(1)
		mg.log.Error("snapshot: cannot read a chunk", "chunk", i, "hash", h.String(), "err", f.err)
		return nil, f.err
	}
	mg.stats.chunkBytes.Add(int64(len(f.data)))
	if ahead {
		mg.stats.readaheads.Add(1)
	}
	return f.data, nil
}

// The ahead buffer holds chunks fetched by readahead until a miss takes
// them (the C side then caches them), at most maxAhead, oldest out first.
// Callers of takeAhead hold flightMu.

// putAhead keeps a chunk fetched ahead; the caller holds flightMu.
func (mg *Manager) putAhead(h manifest.Hash, data []byte) {
	if _, ok := mg.ahead[h]; ok {
		return
	}
	mg.ahead[h] = data
	mg.aheadBytes += len(data)
	mg.aheadOrder = append(mg.aheadOrder, h)
	for len(mg.aheadOrder) > 1 && (len(mg.aheadOrder) > maxAhead || mg.aheadBytes > maxAheadBytes) {
		mg.aheadBytes -= len(mg.ahead[mg.aheadOrder[0]])
		delete(mg.ahead, mg.aheadOrder[0])
		mg.aheadOrder = mg.aheadOrder[1:]
	}
}

// windowLimit is the largest readahead window, in chunks, for chunks of
// chunkSize bytes: maxWindow, fewer for large chunks (maxWindowBytes), but
// never fewer than minWindow.
func windowLimit(chunkSize uint32) int {
	if chunkSize == 0 {
		return maxWindow
	}
	return min(maxWindow, max(minWindow, maxWindowBytes/int(chunkSize)))
}

func (mg *Manager) takeAhead(h manifest.Hash) ([]byte, bool) {
	data, ok := mg.ahead[h]
	if ok {
		mg.aheadBytes -= len(data)
		delete(mg.ahead, h)
		if i := slices.Index(mg.aheadOrder, h); i >= 0 {
			mg.aheadOrder = slices.Delete(mg.aheadOrder, i, i+1)
		}
	}
	return data, ok
}

func (mg *Manager) hasAhead(h manifest.Hash) bool {
	mg.flightMu.Lock()
	defer mg.flightMu.Unlock()
	_, ok := mg.ahead[h]
	return ok || mg.flights[h] != nil
}

// HoldCurrent returns the current version (see Current) and, when it is
// not known, holds it (it stays readable by ReadChunk) until Release.
// Refresh errors are in Status.
func (s *Source) HoldCurrent(force bool, known uint64) *manifest.Manifest {
	m, _ := s.Current(force)
	if m.Seq == known {
		return m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[m.Seq]; h != nil {
		h.refs++
	} else {
		s.held[m.Seq] = &held{m: m, refs: 1}
	}
	return m
}

// Wait waits for the manager's background readahead (see Manager.Wait).
func (s *Source) Wait() { s.mgr.Wait() }

// queueDisk hands a fetched chunk to the disk writer: a goroutine that
// runs while chunks are pending (and exits when none are), so that readers
// do not wait for file creation. The chunk stays in pending (served from
// memory) until it is on disk. With maxPending chunks already waiting (the
// disk, or the CPU the writer gets, slower than the store), the chunk is
// not written: the disk cache is a cache, and neither readers nor fetches
// ever wait for it (another process reading the chunk fetches it and
// offers it again). The caller holds flightMu.
func (mg *Manager) queueDisk(h manifest.Hash, data []byte) {
	if len(mg.pending)-mg.inWrite >= maxPending || (len(mg.pending) > 0 && mg.pendBytes+len(data) > maxPendingBytes) {
		mg.stats.diskBehind.Add(1)
		return
	}
	if _, ok := mg.pending[h]; ok {
		return
	}
	mg.pending[h] = data
	mg.pendBytes += len(data)
	if mg.writers < maxWriters {
		mg.writers++
		mg.bg.Add(1)
		go mg.diskWriter()
	}
}

// writePending writes a pending chunk (claimed by the caller) and drops
// it from pending.
func (mg *Manager) writePending(h manifest.Hash, data []byte) {
	mg.disk.put(h, data)
	mg.flightMu.Lock()
	mg.pendBytes -= len(mg.pending[h])
	delete(mg.pending, h)
	delete(mg.claimed, h)
	mg.inWrite--
	mg.flightMu.Unlock()
}

func (mg *Manager) diskWriter() {
	defer mg.bg.Done()
	done := false
	defer func() {
		if r := recover(); r != nil {
			mg.log.Error("snapshot: panic in a disk cache writer (recovered)", "panic", r)
		}
		if !done {
			mg.flightMu.Lock()
			mg.writers--
			mg.flightMu.Unlock()
		}
	}()
	for {
		mg.flightMu.Lock()
		var h manifest.Hash
		var data []byte
		for k, v := range mg.pending {
			if !mg.claimed[k] {
				h, data = k, v
				break
			}
		}
		if data == nil {
			// Decided under the lock that queueDisk takes: a chunk
			// queued after this starts a new writer.
			mg.writers--
			done = true
			mg.flightMu.Unlock()
			return
		}
		mg.claimed[h] = true
		mg.inWrite++
		mg.flightMu.Unlock()
		mg.writePending(h, data)
	}
}
