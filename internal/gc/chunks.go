package gc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// listRecordSize is a listed chunk or pack object: hash, modification
// time (unix ns), size, kind (kindChunk, kindPack).
const listRecordSize = manifest.HashSize + 8 + 8 + 1

// Kinds of listed objects: chunks/HASH and packs/HASH. Both are named by
// SHA-256 (of a chunk, of a pack's bytes) and referenced alike: a pack is
// kept while a kept manifest places a chunk in it.
const (
	kindChunk = 0
	kindPack  = 1
)

// sweptPrefixes are the prefixes of the objects a collection sweeps, by
// kind.
var sweptPrefixes = [...]string{kindChunk: "chunks/", kindPack: "packs/"}

// deleteBatch is how many chunks one delete request carries.
const deleteBatch = 1000

type listed struct {
	hash  []byte
	mtime time.Time
	size  int64
	kind  byte
}

func decodeListed(rec []byte) listed {
	return listed{
		hash:  rec[:manifest.HashSize],
		mtime: time.Unix(0, int64(binary.BigEndian.Uint64(rec[manifest.HashSize:]))),
		size:  int64(binary.BigEndian.Uint64(rec[manifest.HashSize+8:])),
		kind:  rec[manifest.HashSize+16],
	}
}

// key returns the listed object's key.
func (o listed) key() string {
	if o.kind == kindPack {
		return names.PackKey(fmt.Sprintf("%x", o.hash))
	}
	return names.ChunkKey(fmt.Sprintf("%x", o.hash))
}

// chunks streams the chunk listing into partitions, then merges each with
// the references and deletes what is unreferenced and past the grace
// period.
func (r *run) chunks(ctx context.Context) error {
	list, err := newPartitions(r.dir, "list", listRecordSize)
	if err != nil {
		return err
	}
	defer list.close()
	for kind, prefix := range sweptPrefixes {
		err = r.s.Walk(ctx, prefix, func(page []blob.ObjectInfo) error {
			r.listPages.Add(1)
			recs := make([][]byte, 0, len(page))
			for _, o := range page {
				hexHash, ok := strings.CutPrefix(o.Key, prefix)
				if !ok {
					continue
				}
				h, err := manifest.ParseHash(hexHash)
				if err != nil {
					continue // not an object of this format: never touched
				}
				rec := make([]byte, listRecordSize)
				copy(rec, h[:])
				binary.BigEndian.PutUint64(rec[manifest.HashSize:], uint64(o.ModTime.UnixNano()))
				binary.BigEndian.PutUint64(rec[manifest.HashSize+8:], uint64(o.Size))
				rec[manifest.HashSize+16] = byte(kind)
				recs = append(recs, rec)
			}
			return list.add(recs...)
		})
		if err != nil {
			return fmt.Errorf("gc: list %s: %w", prefix, err)
		}
	}
	if err := list.finish(); err != nil {
		return err
	}
	cutoff := r.t0.Add(-r.opts.Grace)
	// Candidates of several partitions share delete batches.
	var pending []listed
	for i := range partitionCount {
		cands, err := r.partition(list, i, cutoff)
		if err != nil {
			return err
		}
		pending = append(pending, cands...)
		for len(pending) >= deleteBatch {
			if err := r.sweep(ctx, pending[:deleteBatch], cutoff); err != nil {
				return err
			}
			pending = pending[deleteBatch:]
		}
		r.progress()
	}
	if len(pending) > 0 {
		return r.sweep(ctx, pending, cutoff)
	}
	return nil
}

// partition merges partition i of the listing with the references and
// returns the deletion candidates: unreferenced and past the grace period.
func (r *run) partition(list *partitions, i int, cutoff time.Time) ([]listed, error) {
	refData, err := r.refs.read(i)
	if err != nil {
		return nil, err
	}
	listData, err := list.read(i)
	if err != nil {
		return nil, err
	}
	refs := sortedRecords(refData, hashRecordSize)
	objs := sortedRecords(listData, listRecordSize)
	var cands []listed
	var kept, keptBytes, young int64
	seen := func(h []byte) bool {
		_, found := slices.BinarySearchFunc(refs, h, func(a, b []byte) int { return bytes.Compare(a, b) })
		return found
	}
	for _, rec := range objs {
		o := decodeListed(rec)
		switch {
		case seen(o.hash):
			kept++
			keptBytes += o.size
		case !o.mtime.Before(cutoff):
			young++
			kept++
			keptBytes += o.size
		default:
			o.hash = bytes.Clone(o.hash) // not the partition's buffer
			cands = append(cands, o)
		}
	}
	// References the listing did not show.
	var missing []string
	for _, h := range refs {
		if _, found := slices.BinarySearchFunc(objs, h, func(a, b []byte) int { return bytes.Compare(a[:manifest.HashSize], b) }); !found {
			missing = append(missing, fmt.Sprintf("%x", h))
		}
	}
	if len(missing) > 0 {
		r.log.Warn("gc: retained manifests reference chunks the listing lacks", "count", len(missing), "first", missing[0])
	}
	r.mu.Lock()
	r.sum.ChunksKept += kept
	r.sum.ChunkBytesKept += keptBytes
	r.sum.ChunksInGrace += young
	r.sum.MissingChunks += int64(len(missing))
	for _, m := range missing {
		if len(r.sum.MissingSample) < 10 {
			r.sum.MissingSample = append(r.sum.MissingSample, m)
		}
	}
	r.mu.Unlock()
	return cands, nil
}

// sortedRecords splits data into records sorted and without duplicates.
func sortedRecords(data []byte, size int) [][]byte {
	recs := make([][]byte, 0, len(data)/size)
	for off := 0; off < len(data); off += size {
		recs = append(recs, data[off:off+size])
	}
	slices.SortFunc(recs, func(a, b []byte) int { return bytes.Compare(a[:manifest.HashSize], b[:manifest.HashSize]) })
	return slices.CompactFunc(recs, func(a, b []byte) bool { return bytes.Equal(a[:manifest.HashSize], b[:manifest.HashSize]) })
}

// sweep deletes the candidates still past the grace period. Each one's
// modification time is read again right before the delete request, and a
// batch whose oldest observation is older than ObserveSpan is not sent
// (its chunks wait for a later run): a chunk uploaded again since the
// listing (same key, new time) is kept.
func (r *run) sweep(ctx context.Context, batch []listed, cutoff time.Time) error {
	if r.opts.DryRun {
		r.mu.Lock()
		for _, o := range batch {
			r.sum.ChunksDeleted++
			r.sum.ChunkBytesDeleted += o.size
		}
		r.mu.Unlock()
		return nil
	}
	began := time.Now()
	var (
		mu       sync.Mutex
		del      []string
		delBytes int64
		young    int64
		packs    int64
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, r.opts.Parallel)
	)
	for _, o := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			key := o.key()
			r.stats.Add(1)
			info, err := r.s.Stat(ctx, key)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, blob.ErrNotFound):
				// Gone already (another collection).
			case err != nil:
				if firstErr == nil {
					firstErr = err
				}
			case !info.ModTime.Before(cutoff):
				young++ // uploaded again since the listing
			default:
				del = append(del, key)
				delBytes += info.Size
				if o.kind == kindPack {
					packs++
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("gc: stat chunk: %w", firstErr)
	}
	if time.Since(began) > r.opts.ObserveSpan {
		r.mu.Lock()
		r.sum.ChunksDeferred += int64(len(del))
		r.sum.ChunksInGrace += young
		r.mu.Unlock()
		return nil
	}
	if len(del) > 0 {
		r.deletes.Add(1)
		if err := r.s.Delete(ctx, del...); err != nil {
			return fmt.Errorf("gc: delete chunks: %w", err)
		}
	}
	r.mu.Lock()
	r.sum.ChunksDeleted += int64(len(del))
	r.sum.PacksDeleted += packs
	r.sum.ChunkBytesDeleted += delBytes
	r.sum.ChunksInGrace += young
	r.sum.ChunksKept += young
	r.mu.Unlock()
	return nil
}
