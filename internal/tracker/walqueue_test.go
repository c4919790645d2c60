package tracker

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeQueue is the VFS's queue of WAL commits as the tests fill it.
type fakeQueue struct {
	mu      sync.Mutex
	enabled bool
	pos     []byte
	chunks  []uint32
	queued  *QueuedWAL
	takes   int
	walPath string // the -wal OpenWAL opens ("": none)
}

func (q *fakeQueue) Take(keep bool) (QueuedWAL, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !keep {
		q.enabled = false
	}
	if q.queued == nil {
		return QueuedWAL{}, false
	}
	out := *q.queued
	q.queued = nil
	q.takes++
	return out, true
}

// OpenWAL opens the fixture's -wal (walPath), as the VFS lends one.
func (q *fakeQueue) OpenWAL() *os.File {
	if q.walPath == "" {
		return nil
	}
	f, err := os.Open(q.walPath)
	if err != nil {
		return nil
	}
	return f
}

func (q *fakeQueue) Enable(pos []byte, chunks []uint32, chunkSize int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.enabled, q.pos, q.chunks = true, slices.Clone(pos), slices.Clone(chunks)
}

// offer queues the frames w appended since the header from, as the VFS
// does when the queue is enabled at from; false when it would not queue.
func (q *fakeQueue) offer(from []byte, w *testWAL, nFrom uint32) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.enabled || !bytes.Equal(from, q.pos) {
		return false
	}
	frameLen := walFrameHdrLen + w.pageSize
	frames := w.wal[walHdrLen+int(nFrom)*frameLen:]
	if q.queued == nil {
		q.queued = &QueuedWAL{From: slices.Clone(from)}
	}
	q.queued.Frames = append(q.queued.Frames, frames...)
	q.queued.To = w.indexHeader()
	q.queued.Commits++
	q.queued.Last = time.Now()
	q.pos = w.indexHeader()
	return true
}

// queueFixture is a tracked WAL database whose VFS queue is a fakeQueue.
type queueFixture struct {
	*walFixture
	q     *fakeQueue
	w     *testWAL
	first []byte // the wal-index header after the first commit
}

func newQueueFixture(t *testing.T) *queueFixture {
	t.Helper()
	const ps = 1024
	dir := t.TempDir()
	logs := &levelCounter{n: map[slog.Level]int{}}
	q := &fakeQueue{}
	m := New(Options{SpoolDir: filepath.Join(dir, "spool"), Hostname: "h", BuildDelay: time.Hour,
		Logger: slog.New(logs), WALQueues: func(uint64) WALQueue { return q }})
	m.Start()
	t.Cleanup(func() { m.Close(context.Background()) })
	dbPath := filepath.Join(dir, "w.db")
	data := make([]byte, 2*ps)
	copy(data, "SQLite format 3\x00")
	data[16], data[17] = ps>>8, ps&0xff
	data[18], data[19] = 2, 2 // WAL mode
	data[31] = 2
	if err := os.WriteFile(dbPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h := m.Open(dbPath)
	q.walPath = dbPath + "-wal"
	f := &queueFixture{
		walFixture: &walFixture{m: m, db: m.DB(dbPath), h: h, file: &memFile{data: data}, walPath: dbPath + "-wal", logs: logs},
		q:          q,
		w:          newTestWAL(ps, [8]byte{5, 4, 3, 2, 1, 0, 9, 8}),
	}
	// Two commits captured by the tracker (the first rescans, the second
	// continues it and enables the queue).
	f.captured(t, 2, map[uint32]byte{1: 0, 2: 10})
	f.first = f.w.indexHeader()
	f.captured(t, 2, map[uint32]byte{2: 20})
	if !q.enabled || !bytes.Equal(q.pos, f.w.indexHeader()) || !slices.Contains(q.chunks, 0) {
		t.Fatalf("the incremental capture did not enable the queue at its position (enabled %v, chunks %v)", q.enabled, q.chunks)
	}
	return f
}

// captured commits pages through the tracker (the VFS called Go).
func (f *queueFixture) captured(t *testing.T, nPage uint32, pages map[uint32]byte) {
	t.Helper()
	var prior []byte
	if f.w.frames() > 0 {
		prior = f.w.indexHeader()
	}
	f.w.commit(nPage, pages)
	if err := os.WriteFile(f.walPath, f.w.wal, 0o644); err != nil {
		t.Fatal(err)
	}
	f.release(prior, f.w.indexHeader())
	if err := f.db.lastErrForTest(); err != nil {
		t.Fatalf("capture: %v", err)
	}
}

// queued commits pages through the VFS's queue (no Go call).
func (f *queueFixture) queued(t *testing.T, nPage uint32, pages map[uint32]byte) {
	t.Helper()
	prior, n := f.w.indexHeader(), f.w.frames()
	f.w.commit(nPage, pages)
	if err := os.WriteFile(f.walPath, f.w.wal, 0o644); err != nil {
		t.Fatal(err)
	}
	if !f.q.offer(prior, f.w, n) {
		t.Fatal("the queue refused a commit that continues its position")
	}
}

func (f *queueFixture) spool(t *testing.T) []byte {
	t.Helper()
	if err := f.db.build(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return spoolImage(t, f.db.spool)
}

// TestWALQueue_AppliedAtBuild: commits queued by the VFS (several, one of
// them growing the database by a page it wrote) are in the version the
// next build publishes, byte for byte, and the build disables the queue.
func TestWALQueue_AppliedAtBuild(t *testing.T) {
	f := newQueueFixture(t)
	f.queued(t, 2, map[uint32]byte{1: 30, 2: 31})
	f.queued(t, 3, map[uint32]byte{3: 32})
	f.queued(t, 3, map[uint32]byte{2: 33})
	if got, want := f.spool(t), f.w.state(f.file.data); !bytes.Equal(got, want) {
		t.Fatalf("spool image after the build differs from the last queued commit's state")
	}
	if f.q.enabled {
		t.Fatal("the build left the queue enabled (its chunk copies are built and gone)")
	}
	// The next commit calls Go again, continuing from the queued position.
	f.captured(t, 3, map[uint32]byte{3: 34})
	if got, want := f.spool(t), f.w.state(f.file.data); !bytes.Equal(got, want) {
		t.Fatal("spool image after a capture that follows queued commits is not its state")
	}
}

// TestWALQueue_NewChunks: queued commits that grow the database (1 KiB
// pages, 64 pages a chunk) over the rest of chunk 0 and into chunks 1 and
// 2, which the pending set has no copy of, make those chunks from their
// frames alone; later queued commits rewrite pages of them.
func TestWALQueue_NewChunks(t *testing.T) {
	f := newQueueFixture(t)
	grow := func(from, to uint32, fill byte) map[uint32]byte {
		pages := map[uint32]byte{}
		for pg := from; pg <= to; pg++ {
			pages[pg] = fill + byte(pg)
		}
		return pages
	}
	f.queued(t, 70, grow(3, 70, 1))
	f.queued(t, 140, grow(71, 140, 2))
	f.queued(t, 140, map[uint32]byte{66: 3, 130: 4, 1: 5})
	_, _, dropped := WALQueueStats()
	if got, want := f.spool(t), f.w.state(f.file.data); !bytes.Equal(got, want) {
		t.Fatalf("spool image (%d bytes) differs from the last queued commit's state (%d bytes)", len(got), len(want))
	}
	if _, _, d := WALQueueStats(); d != dropped {
		t.Fatal("the queue was dropped")
	}
}

// TestWALQueue_AppliedBeforeCapture: a capture takes the queued commits
// before its own event, so that its commit is applied over them.
func TestWALQueue_AppliedBeforeCapture(t *testing.T) {
	f := newQueueFixture(t)
	f.queued(t, 2, map[uint32]byte{2: 40})
	f.captured(t, 2, map[uint32]byte{1: 41})
	if f.q.takes != 1 {
		t.Fatalf("the capture took the queue %d times, want 1", f.q.takes)
	}
	if got, want := f.spool(t), f.w.state(f.file.data); !bytes.Equal(got, want) {
		t.Fatal("spool image differs from the state after the queued commit and the captured one")
	}
}

// TestWALQueue_Dropped: queues the tracker must not apply leave the
// published state a committed one: a frame whose bytes do not give its
// checksum, a queue that does not start at the remembered position, and a
// database that grew by a page no queued frame wrote. The next capture
// reads the commits from the -wal (or rescans) and publishes the state.
func TestWALQueue_Dropped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		queue func(t *testing.T, f *queueFixture)
	}{
		{"corrupt frame", func(t *testing.T, f *queueFixture) {
			f.queued(t, 3, map[uint32]byte{2: 50, 3: 51})
			f.q.queued.Frames[walFrameHdrLen+7] ^= 0xff
		}},
		{"not from the remembered position", func(t *testing.T, f *queueFixture) {
			f.queued(t, 3, map[uint32]byte{2: 50, 3: 51})
			f.q.queued.From = f.first // a position before the remembered one
		}},
		{"grown by an unwritten page", func(t *testing.T, f *queueFixture) {
			f.queued(t, 4, map[uint32]byte{3: 51}) // page 4 has no frame
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newQueueFixture(t)
			before := f.w.state(f.file.data)
			tc.queue(t, f)
			_, _, dropped := WALQueueStats()
			if got := f.spool(t); !bytes.Equal(got, before) {
				t.Fatal("a dropped queue changed the published state")
			}
			if _, _, d := WALQueueStats(); d != dropped+1 {
				t.Fatalf("queues dropped: %d, want %d", d, dropped+1)
			}
			if err := f.db.Flush(context.Background()); err == nil {
				t.Fatal("a flush after a dropped queue succeeded: its commits are not captured")
			}
			f.captured(t, 4, map[uint32]byte{1: 52, 4: 53})
			if got, want := f.spool(t), f.w.state(f.file.data); !bytes.Equal(got, want) {
				t.Fatal("the capture after a dropped queue does not publish the state")
			}
		})
	}
}

// TestWALQueue_HoleInWAL: the -wal was cut inside the queued frames behind
// SQLite's back and written past (zeros up to the next commit's frames).
// The queue is not applied (the published state stays the last captured
// one, a flush fails) although its frames validate in memory: the file
// would feed those zeros to every later read of those frames.
func TestWALQueue_HoleInWAL(t *testing.T) {
	for _, at := range []string{"in the remembered last frame", "in a queued frame"} {
		t.Run(at, func(t *testing.T) {
			f := newQueueFixture(t)
			before := f.w.state(f.file.data)
			frameLen := walFrameHdrLen + f.w.pageSize
			end := walHdrLen + int(f.w.frames())*frameLen // the remembered last frame's end
			f.queued(t, 3, map[uint32]byte{2: 80, 3: 81})
			f.queued(t, 3, map[uint32]byte{1: 82})
			hole := end - 100
			if at == "in a queued frame" {
				hole = end + frameLen + 200
			}
			wal := slices.Clone(f.w.wal)
			clear(wal[hole : end+2*frameLen]) // up to the last commit's frame
			if err := os.WriteFile(f.walPath, wal, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, dropped := WALQueueStats()
			if got := f.spool(t); !bytes.Equal(got, before) {
				t.Fatal("a queue the -wal does not hold changed the published state")
			}
			if _, _, d := WALQueueStats(); d != dropped+1 {
				t.Fatalf("queues dropped: %d, want %d", d, dropped+1)
			}
			if err := f.db.Flush(context.Background()); err == nil {
				t.Fatal("a flush after the dropped queue succeeded")
			}
		})
	}
}
