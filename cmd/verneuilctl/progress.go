package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// progressPeriod is how often the progress line is redrawn.
const progressPeriod = 200 * time.Millisecond

// progress redraws one status line on a terminal (stderr) while long work
// runs: bytes done, of how many, rate and ETA. On anything but a terminal
// there is no progress line; commands print a one-line summary instead.
type progress struct {
	out   io.Writer
	label string
	done  func() int64
	total func() int64  // 0: unknown
	note  func() string // more to show after the rate, or nil
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startProgress starts a progress line on stderr if it is a terminal, and
// returns nil (whose methods do nothing) otherwise. note, if given, adds
// to the line what bytes do not say.
func (a *app) startProgress(label string, done, total func() int64, note ...func() string) *progress {
	f, ok := a.stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	p := &progress{out: f, label: label, done: done, total: total, start: time.Now(), stop: make(chan struct{})}
	if len(note) > 0 {
		p.note = note[0]
	}
	p.draw()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(progressPeriod)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

// finish draws the last state (complete when err is nil) and erases the
// line (the summary or the error follows).
func (p *progress) finish(err error) {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	if err == nil {
		if total := p.total(); total > 0 {
			p.done = func() int64 { return total }
		}
	}
	p.draw()
	fmt.Fprint(p.out, "\r\x1b[K")
}

func (p *progress) draw() {
	line := progressLine(p.label, p.done(), p.total(), time.Since(p.start))
	if p.note != nil {
		line += "  " + p.note()
	}
	fmt.Fprint(p.out, "\r\x1b[K"+line)
}

// progressLine formats one progress state.
func progressLine(label string, done, total int64, elapsed time.Duration) string {
	var b strings.Builder
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	if total > 0 {
		done = min(done, total)
	}
	fmt.Fprintf(&b, "%s %s", label, humanBytes(done))
	if total > 0 {
		fmt.Fprintf(&b, " / %s %3.0f%%", humanBytes(total), 100*float64(done)/float64(total))
	}
	fmt.Fprintf(&b, "  %s/s", humanBytes(int64(rate)))
	if total > 0 && rate > 0 {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", eta.Round(time.Second))
	}
	return b.String()
}

// chunkCounter is a blob.Store that counts the chunk objects read through
// it (restore and verify fetch each chunk once), and the bytes of pack
// ranges.
type chunkCounter struct {
	blob.Store
	chunks    atomic.Int64
	packBytes atomic.Int64
}

// done estimates the database bytes read so far: chunk objects count
// whole, pack ranges by their (possibly compressed) size.
func (c *chunkCounter) done(chunkSize uint32) int64 {
	return c.chunks.Load()*int64(chunkSize) + c.packBytes.Load()
}

func (c *chunkCounter) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := c.Store.Get(ctx, key)
	if err == nil && strings.HasPrefix(key, "chunks/") {
		c.chunks.Add(1)
	}
	return b, err
}

func (c *chunkCounter) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	b, err := c.Store.GetRange(ctx, key, offset, length)
	if err == nil && strings.HasPrefix(key, "chunks/") {
		c.chunks.Add(1)
	}
	if err == nil && strings.HasPrefix(key, "packs/") {
		c.packBytes.Add(int64(len(b)))
	}
	return b, err
}

// uploadTotal returns a total for the progress of an upload: the bytes
// uploaded so far plus those still staged in the spools of keys (nil: all),
// recounted at most once a second.
func uploadTotal(root string, keys []string, uploaded func() int64) func() int64 {
	var last time.Time
	var staged int64
	return func() int64 {
		if time.Since(last) >= time.Second {
			staged, last = stagedChunkBytes(root, keys), time.Now()
		}
		return uploaded() + staged
	}
}

// stagedChunkBytes sums the staged chunk files of the spools of keys (all
// spools when keys is nil): an upper bound of what an upload sends (chunks
// already in the targets are skipped).
func stagedChunkBytes(root string, keys []string) int64 {
	if keys == nil {
		keys, _ = spool.List(root)
	}
	var total int64
	for _, key := range keys {
		d, err := spool.Existing(root, key)
		if err != nil {
			continue
		}
		m, _, err := d.Manifest()
		if err != nil || m == nil {
			continue
		}
		if up, _, err := d.Uploaded(); err == nil && !spool.NeedsUpload(m, up) {
			continue
		}
		hashes, err := d.StagedChunks()
		if err != nil {
			continue
		}
		for _, h := range hashes {
			if fi, err := os.Stat(d.ChunkPath(h)); err == nil {
				total += fi.Size()
			}
		}
	}
	return total
}
