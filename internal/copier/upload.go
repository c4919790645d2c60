package copier

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// ErrChunkLost means a manifest references a chunk that is neither staged
// nor in the store; the spool is marked for a rescan of the database.
var ErrChunkLost = errors.New("chunk missing from spool and store")

// upload copies the newest staged manifest of key and its chunks to every
// target. It holds the per-database upload lock in this process and the
// spool's upload flock across processes (blocking when sync, skipping when
// another process is already uploading otherwise).
func (c *Copier) upload(ctx context.Context, key string, sync bool) error {
	st := c.dbState(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	d, err := spool.Existing(c.opts.SpoolDir, key)
	if err != nil {
		return err
	}
	unlock, err := d.UploadLock(sync)
	if err != nil {
		return err
	}
	if unlock == nil {
		return nil // another process is uploading this spool
	}
	defer unlock()
	// A manifest may be replaced while we upload; its GC may then delete
	// chunks we were about to send. Retry with the newer manifest.
	for range 10 {
		err = c.uploadOnce(ctx, d)
		if !errors.Is(err, errRestart) {
			break
		}
	}
	c.mu.Lock()
	st.lastUpload = time.Now()
	c.mu.Unlock()
	if err != nil {
		c.stats.errors.Add(1)
	}
	return err
}

var errRestart = errors.New("staged manifest changed during upload")

func (c *Copier) uploadOnce(ctx context.Context, d *spool.Dir) error {
	m, enc, err := d.Manifest()
	if err != nil {
		return err
	}
	if m == nil {
		return nil
	}
	up, _, err := d.Uploaded()
	if err != nil {
		c.log.Warn("ignoring damaged upload record", "db", d.Key, "err", err)
		up = nil
	}
	if up != nil && up.Seq >= m.Seq {
		return nil
	}
	inUploaded := map[manifest.Hash]bool{}
	if up != nil {
		for _, h := range up.Chunks {
			inUploaded[h] = true
		}
	}
	seen := map[manifest.Hash]bool{}
	for i, h := range m.Chunks {
		if i == 0 || seen[h] || h == manifest.ZeroChunkHash(manifest.ChunkLen(i, m.Length, m.ChunkSize)) {
			continue
		}
		seen[h] = true
		if err := c.uploadChunk(ctx, d, m.Seq, h, inUploaded[h]); err != nil {
			return err
		}
	}
	// Everything the manifest references is in every target: publish it.
	for _, t := range c.opts.Targets {
		if err := c.do(ctx, func(ctx context.Context) error {
			return t.Put(ctx, names.ManifestKey(d.Key, m.Seq), enc)
		}); err != nil {
			return fmt.Errorf("upload manifest %d of %s to %s: %w", m.Seq, d.Key, t, err)
		}
		if err := c.updateLatest(ctx, t, d.Key, m, enc); err != nil {
			return err
		}
	}
	if err := d.WriteUploaded(enc); err != nil {
		return err
	}
	c.stats.manifests.Add(1)
	c.stats.observeLag(time.Since(m.CommitTime))
	return nil
}

func (c *Copier) isKnown(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.known[key]
	return ok
}

func (c *Copier) setKnown(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.known) > 1<<20 {
		clear(c.known) // bound memory; a miss only costs a request
	}
	c.known[key] = struct{}{}
}

func (c *Copier) uploadChunk(ctx context.Context, d *spool.Dir, seq uint64, h manifest.Hash, wasUploaded bool) error {
	key := names.ChunkKey(h.String())
	if d.HasChunk(h) {
		data, err := d.ReadChunk(h)
		if err != nil {
			if errors.Is(err, manifest.ErrCorrupt) {
				_ = d.MarkRescan(err.Error())
				return fmt.Errorf("%w: %v", ErrChunkLost, err)
			}
			if cur, _, _ := d.Manifest(); cur != nil {
				return errRestart // deleted by a newer manifest's GC
			}
			return err
		}
		if !c.isKnown(key) {
			obj := manifest.EncodeChunk(data)
			for _, t := range c.opts.Targets {
				if err := c.do(ctx, func(ctx context.Context) error { return t.Put(ctx, key, obj) }); err != nil {
					return fmt.Errorf("upload chunk %s to %s: %w", h, t, err)
				}
			}
			c.setKnown(key)
			c.stats.chunks.Add(1)
			c.stats.bytes.Add(int64(len(obj)))
		}
		return d.RemoveChunk(h)
	}
	if wasUploaded || c.isKnown(key) {
		return nil
	}
	// Not staged and not known: it must already be in every target.
	for _, t := range c.opts.Targets {
		var ok bool
		err := c.do(ctx, func(ctx context.Context) (err error) { ok, err = t.Exists(ctx, key); return err })
		if err != nil {
			return fmt.Errorf("check chunk %s in %s: %w", h, t, err)
		}
		if !ok {
			// A newer manifest may have replaced the one being uploaded,
			// and its GC deleted this chunk: start over with it.
			if cur, _, err := d.Manifest(); err == nil && cur != nil && cur.Seq != seq {
				return errRestart
			}
			_ = d.MarkRescan("chunk " + h.String() + " missing")
			return fmt.Errorf("%w: %s in %s; the database will be rescanned", ErrChunkLost, h, t)
		}
	}
	c.setKnown(key)
	return nil
}

// updateLatest replaces the "latest" object unless it already holds a
// version at least as new: with conditional writes, racing copiers never
// move it backwards.
func (c *Copier) updateLatest(ctx context.Context, t blob.Store, key string, m *manifest.Manifest, enc []byte) error {
	lk := names.LatestKey(key)
	for attempt := 0; ; attempt++ {
		var cur []byte
		var ver string
		err := c.do(ctx, func(ctx context.Context) (err error) {
			cur, ver, err = t.GetVersioned(ctx, lk)
			return err
		})
		switch {
		case errors.Is(err, blob.ErrNotFound):
			ver = ""
		case err != nil:
			return fmt.Errorf("read latest of %s in %s: %w", key, t, err)
		default:
			if old, derr := manifest.Decode(cur); derr == nil && old.Seq >= m.Seq {
				return nil
			}
		}
		err = c.do(ctx, func(ctx context.Context) error { return t.PutIf(ctx, lk, enc, ver) })
		if err == nil {
			return nil
		}
		if !errors.Is(err, blob.ErrPrecondition) || attempt >= 10 {
			return fmt.Errorf("update latest of %s in %s: %w", key, t, err)
		}
	}
}

// do runs one blob-store request under the rate limit, retrying transient
// errors with capped exponential backoff and full jitter.
func (c *Copier) do(ctx context.Context, op func(context.Context) error) error {
	var err error
	for attempt := range c.opts.MaxAttempts {
		if werr := c.limit.wait(ctx); werr != nil {
			return werr
		}
		c.stats.requests.Add(1)
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = op(rctx)
		cancel()
		if err == nil || errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrPrecondition) ||
			errors.Is(err, blob.ErrPermanent) || ctx.Err() != nil {
			return err
		}
		c.stats.retries.Add(1)
		backoff := min(50*time.Millisecond<<attempt, 5*time.Second)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(rand.Int64N(int64(backoff)) + 1)):
		}
	}
	return err
}
