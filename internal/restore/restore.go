// Package restore owns reading replicas back: finding a database's newest
// manifest or the version current at a point in time, and rebuilding the
// database file from verified chunks into a temp file that is fsynced and
// renamed atomically over the destination, under SQLite's locks on it.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"sync"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// Latest fetches and verifies the newest manifest of the database key.
func Latest(ctx context.Context, s blob.Store, key string) (*manifest.Manifest, error) {
	data, err := s.Get(ctx, names.LatestKey(key))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, notFound(fmt.Sprintf("no replica of %s in %s", key, s))
	}
	if err != nil {
		return nil, fmt.Errorf("fetch latest manifest of %s: %w", key, err)
	}
	m, err := manifest.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("latest manifest of %s: %w", key, err)
	}
	if err := checkName(m, key); err != nil {
		return nil, fmt.Errorf("latest manifest of %s: %w", key, err)
	}
	return m, nil
}

// Versions lists the sequence numbers of every stored manifest of key,
// oldest first.
func Versions(ctx context.Context, s blob.Store, key string) ([]uint64, error) {
	keys, err := s.List(ctx, names.ManifestsPrefix(key))
	if err != nil {
		return nil, fmt.Errorf("list versions of %s: %w", key, err)
	}
	seqs := make([]uint64, 0, len(keys))
	for _, k := range keys {
		seq, err := names.ParseManifestKey(k)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// Version fetches and verifies one stored manifest.
func Version(ctx context.Context, s blob.Store, key string, seq uint64) (*manifest.Manifest, error) {
	data, err := s.Get(ctx, names.ManifestKey(key, seq))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, notFound(fmt.Sprintf("no version %d of %s in %s", seq, key, s))
	}
	if err != nil {
		return nil, fmt.Errorf("fetch manifest %d of %s: %w", seq, key, err)
	}
	m, err := manifest.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("manifest %d of %s: %w", seq, key, err)
	}
	if m.Seq != seq {
		return nil, fmt.Errorf("manifest %d of %s: %w: holds version %d", seq, key, manifest.ErrCorrupt, m.Seq)
	}
	if err := checkName(m, key); err != nil {
		return nil, fmt.Errorf("manifest %d of %s: %w", seq, key, err)
	}
	return m, nil
}

// checkName refuses a manifest stored under key that describes another
// database (its name's key is not key).
func checkName(m *manifest.Manifest, key string) error {
	if k := names.Key(m.Name); k != key {
		return fmt.Errorf("%w: it is the manifest of database %q (key %s), not of key %s", manifest.ErrCorrupt, m.Name, k, key)
	}
	return nil
}

// At returns the newest version committed at or before t.
func At(ctx context.Context, s blob.Store, key string, t time.Time) (*manifest.Manifest, error) {
	seqs, err := Versions(ctx, s, key)
	if err != nil {
		return nil, err
	}
	// Sequence numbers are at least the commit time in nanoseconds, so no
	// version whose seq is below t can be after it; start there and walk back.
	i := sort.Search(len(seqs), func(i int) bool { return seqs[i] > uint64(t.UnixNano()) })
	for i = i - 1; i >= 0; i-- {
		m, err := Version(ctx, s, key, seqs[i])
		if err != nil {
			return nil, err
		}
		if !m.CommitTime.After(t) {
			return m, nil
		}
	}
	return nil, notFound(fmt.Sprintf("no version of %s committed at or before %s", key, t.Format(time.RFC3339Nano)))
}

// Chunk fetches and verifies chunk i of m.
func Chunk(ctx context.Context, s blob.Store, m *manifest.Manifest, i int) ([]byte, error) {
	n := manifest.ChunkLen(i, m.Length, m.ChunkSize)
	if i == 0 {
		return m.Chunk0, nil
	}
	h := m.Chunks[i]
	if h == manifest.ZeroChunkHash(n) {
		return make([]byte, n), nil
	}
	obj, err := s.Get(ctx, names.ChunkKey(h.String()))
	if err != nil {
		return nil, fmt.Errorf("fetch chunk %d (%s): %w", i, h, err)
	}
	data, err := manifest.DecodeChunk(obj, h, int(m.ChunkSize))
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", i, err)
	}
	if len(data) != n {
		return nil, fmt.Errorf("chunk %d (%s): %w: %d bytes, want %d", i, h, manifest.ErrCorruptChunk, len(data), n)
	}
	return data, nil
}

// Write rebuilds the database described by m into w, fetching up to
// parallel chunks at once and verifying each.
func Write(ctx context.Context, s blob.Store, m *manifest.Manifest, w io.WriterAt, parallel int) error {
	if parallel <= 0 {
		parallel = 8
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	idx := make(chan int)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				data, err := Chunk(ctx, s, m, i)
				if err == nil {
					_, err = w.WriteAt(data, int64(i)*int64(m.ChunkSize))
				}
				if err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := range m.Chunks {
		select {
		case idx <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// notFoundError is a not-found error whose message is complete by itself;
// errors.Is(err, blob.ErrNotFound) holds for it.
type notFoundError string

func notFound(msg string) error { return notFoundError(msg) }

func (e notFoundError) Error() string { return string(e) }
func (e notFoundError) Is(target error) bool {
	return target == blob.ErrNotFound || target == fs.ErrNotExist
}
