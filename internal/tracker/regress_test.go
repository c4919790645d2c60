package tracker

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// simDB is a simulated database file driven through Manager.Capture the
// way the VFS drives it.
type simDB struct {
	t   *testing.T
	m   *Manager
	h   uint64
	db  *DB
	f   *memFile
	seq uint64
	// stuck: a lock was left held, Close would deadlock.
	stuck bool
}

func newSimDB(t *testing.T, opts Options) *simDB {
	t.Helper()
	dir := t.TempDir()
	opts.SpoolDir = filepath.Join(dir, "spool")
	opts.Hostname = "h"
	if opts.BuildDelay == 0 {
		opts.BuildDelay = time.Hour // the tests build explicitly
	}
	m := New(opts)
	m.Start()
	s := &simDB{t: t, m: m}
	t.Cleanup(func() {
		if !s.stuck {
			m.Close(t.Context())
		}
	})
	dbPath := filepath.Join(dir, "x.db")
	if err := os.WriteFile(dbPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := m.Open(dbPath)
	if h == 0 {
		t.Fatal("Open returned 0")
	}
	s.h, s.db, s.f, s.seq = h, m.DB(dbPath), &memFile{data: make([]byte, 4<<16)}, 1000
	return s
}

func (s *simDB) header() []byte { b := make([]byte, HeaderLen); s.f.ReadAt(b, 0); return b }

// commit writes one byte pattern into each given chunk (growing the file
// as needed) and captures the transaction.
func (s *simDB) commit(chunks ...int) {
	s.commitWith(s.f, chunks...)
}

// commitWith is commit with the capture reading through src.
func (s *simDB) commitWith(src Source, chunks ...int) bool {
	return s.m.Capture(s.h, src, s.write(chunks...))
}

// write is the write half of commit: it changes the file and returns the
// event that captures it.
func (s *simDB) write(chunks ...int) Event {
	preX, preH := append([]byte(nil), s.f.xattr...), s.header()
	s.seq++
	dirty := []uint32{0}
	for _, c := range chunks {
		end := (c + 1) << 16
		if end > len(s.f.data) {
			s.f.data = append(s.f.data, make([]byte, end-len(s.f.data))...)
		}
		for i := c << 16; i < end; i += 512 {
			s.f.data[i+100] = byte(s.seq)
		}
		dirty = append(dirty, uint32(c))
	}
	s.f.xattr = binary.BigEndian.AppendUint64(nil, s.seq)
	binary.BigEndian.PutUint32(s.f.data[24:], uint32(s.seq)) // change counter
	return Event{Kind: Commit, Dirty: dirty, PreXattr: preX, PreHeader: preH, PostXattr: s.f.xattr, Seq: s.seq}
}

// sameAsFile fails the test when the spool's manifest does not describe
// the file.
func (s *simDB) sameAsFile(what string) {
	s.t.Helper()
	if got := spoolImage(s.t, s.db.spool); !bytes.Equal(got, s.f.data) {
		s.t.Fatalf("%s: spool image (%d bytes) differs from the file (%d bytes)", what, len(got), len(s.f.data))
	}
}

// TestRegression_FailedBuildRacingCommit: a build fails (spool tmp/
// unusable) while a commit lands. The commit's pending copies hold only its
// own chunks; the copies of the failed build must not be lost, and no
// manifest applying the commit's chunks alone to the old base may be
// published or adopted.
func TestRegression_FailedBuildRacingCommit(t *testing.T) {
	s := newSimDB(t, Options{})
	s.m.Capture(s.h, s.f, Event{Kind: Check})
	if err := s.db.build(); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("initial")

	tmp := filepath.Join(s.db.spool.Path, "tmp")
	s.commit(1) // V1: chunk 1 pending
	testHookBuilding = func(db *DB) {
		testHookBuilding = nil
		s.commit(2) // V2 lands while V1 is being built
		// The build of V1 fails: tmp/ is unusable.
		if err := os.RemoveAll(tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tmp, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { testHookBuilding = nil })
	if err := s.db.build(); err == nil {
		t.Fatal("build with an unusable tmp/ succeeded")
	}
	// The spool recovers.
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	// The next build must publish V2 with V1's chunk, or nothing.
	if err := s.db.build(); err != nil {
		t.Fatalf("build after recovery: %v", err)
	}
	if man, _, err := s.db.spool.Manifest(); err != nil || man == nil {
		t.Fatalf("spool manifest: %v", err)
	} else if bytes.Equal(man.VersionID, identity(0, s.f.xattr, s.header())) {
		s.sameAsFile("manifest built after the failed build")
	}
	// The next commit (which may adopt the spool's manifest) and Flush.
	s.commit(3)
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	s.sameAsFile("after the next commit")
}

// panicky is a Source that panics on its first read.
type panicky struct {
	Source
	armed bool
}

func (p *panicky) ReadAt(b []byte, off int64) error {
	if p.armed {
		p.armed = false
		panic("injected panic in a capture read")
	}
	return p.Source.ReadAt(b, off)
}

// TestRegression_PanicInCaptureReleasesLocks: a panic in the middle of a
// capture (recovered by the VFS trampoline) must leave no tracker mutex
// held, and the next capture must produce a correct replica.
func TestRegression_PanicInCaptureReleasesLocks(t *testing.T) {
	s := newSimDB(t, Options{})
	s.m.Capture(s.h, s.f, Event{Kind: Check})
	s.commit(1)
	func() {
		defer func() { recover() }() // what verneuilGoCapture does
		s.commitWith(&panicky{Source: s.f, armed: true}, 2, 3)
	}()
	if !s.db.mu.TryLock() {
		s.stuck = true
		t.Fatal("db.mu is still held after a panic in a capture")
	}
	s.db.mu.Unlock()
	if !s.db.buildMu.TryLock() {
		s.stuck = true
		t.Fatal("db.buildMu is still held after a panic in a capture")
	}
	s.db.buildMu.Unlock()
	s.commit(2)
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	s.sameAsFile("after a panic in a capture")
}

// TestRegression_CaptureDoesNotWaitForBusySpool: a capture runs while the
// VFS holds SHARED; when it must rescan or adopt and another build holds
// the spool's flock, it defers the work (asking for a Check) instead of
// blocking the writers waiting for SHARED to go.
func TestRegression_CaptureDoesNotWaitForBusySpool(t *testing.T) {
	s := newSimDB(t, Options{})
	unlock, err := s.db.spool.Lock() // another process's build
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() { done <- s.m.Capture(s.h, s.f, Event{Kind: Check}) }()
	var want bool
	select {
	case want = <-done:
	case <-time.After(30 * time.Second): // the deferral takes 20 ms
		unlock()
		<-done
		t.Fatal("a capture blocked on the spool's flock")
	}
	unlock()
	if !want {
		t.Fatal("a deferred capture did not ask for a Check")
	}
	if err := s.db.Flush(t.Context()); err == nil {
		t.Fatal("Flush reported success while the capture was deferred")
	}
	// The next read transaction captures the file.
	if s.m.Capture(s.h, s.f, Event{Kind: Check}) {
		t.Fatal("the retried Check failed")
	}
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("after the deferred check")
}

// bufRecorder is a Source that records the distinct buffers it fills.
type bufRecorder struct {
	Source
	bufs map[*byte]int
}

func (b *bufRecorder) ReadAt(p []byte, off int64) error {
	if len(p) > 0 {
		b.bufs[&p[0]] = cap(p)
	}
	return b.Source.ReadAt(p, off)
}

func (b *bufRecorder) held() (n int) {
	for _, c := range b.bufs {
		n += c
	}
	return n
}

// TestRegression_LargeTransactionStreamed: a transaction larger than the
// memory budget is copied from the file one chunk at a time (to a spill
// file), not into memory in full before the budget is checked.
func TestRegression_LargeTransactionStreamed(t *testing.T) {
	const budget = 256 << 10
	s := newSimDB(t, Options{MemoryBudget: budget})
	s.m.Capture(s.h, s.f, Event{Kind: Check})
	s.commit(1, 2) // pending copies from an earlier commit
	big := []int{2}
	for c := 3; c < 3+64; c++ { // 4 MiB, growing the file
		big = append(big, c)
	}
	rec := &bufRecorder{Source: s.f, bufs: map[*byte]int{}}
	if s.commitWith(rec, big...) {
		t.Fatal("the large commit failed")
	}
	if held := rec.held(); held > budget {
		t.Fatalf("the capture of a 4 MiB transaction filled %d bytes of buffers (budget %d)", held, budget)
	}
	s.commit(big[10:]...) // a second large commit squashes the first
	s.db.mu.Lock()
	inMemory := s.db.pendingBytes
	s.db.mu.Unlock()
	if inMemory > budget {
		t.Fatalf("%d bytes of chunk copies in memory after the commit (budget %d)", inMemory, budget)
	}
	if err := s.db.build(); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("after the large commit")
	s.commit(5)
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("after the next commit")
}

// TestRegression_RescanWorkOutsideShared: the first capture of a file the
// tracker does not know (a new process, a bypassing writer) runs under
// SHARED; it only copies the file, in slices of at most 1 MiB, and leaves
// hashing, staging and publishing to the build, outside SHARED.
func TestRegression_RescanWorkOutsideShared(t *testing.T) {
	s := newSimDB(t, Options{})
	s.f.data = make([]byte, 5<<20+123)
	for i := range s.f.data {
		s.f.data[i] = byte(i / 4096)
	}
	rec := &bufRecorder{Source: s.f, bufs: map[*byte]int{}}
	if s.m.Capture(s.h, rec, Event{Kind: Check}) {
		t.Fatal("the first check failed")
	}
	for _, n := range rec.bufs {
		if n > 1<<20 {
			t.Fatalf("the rescan read %d bytes at once under SHARED", n)
		}
	}
	if man, _, err := s.db.spool.Manifest(); err != nil || man != nil {
		t.Fatalf("the capture published a manifest (%v) under SHARED", err)
	}
	if staged, err := s.db.spool.StagedChunks(); err != nil || len(staged) != 0 {
		t.Fatalf("the capture staged %d chunks under SHARED (%v)", len(staged), err)
	}
	s.commit(3) // squashes into the rescanned set
	if err := s.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.sameAsFile("after the rescan's build")
}
