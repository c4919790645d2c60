package restore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// BaseCache keeps the last base manifest a delta was resolved against
// (its encoding, by sequence number), so that resolving the next delta on
// the same base costs no request. The zero value is ready to use; it is
// safe for concurrent use.
type BaseCache struct {
	mu   sync.Mutex
	seq  uint64
	data []byte
}

func (c *BaseCache) get(seq uint64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data != nil && c.seq == seq {
		return c.data
	}
	return nil
}

func (c *BaseCache) put(seq uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq, c.data = seq, data
}

func (c *BaseCache) drop() { c.put(0, nil) }

// LatestTagged is Latest with the read of "latest" made conditional (see
// blob.GetTagged): it returns an error wrapping blob.ErrNotModified while
// latest still has tag known, and otherwise the manifest and latest's new
// tag. A delta's base comes from bases (nil: none) when it holds that
// version, and is kept there after a fetch once the delta applied to it. A cached base that does not
// resolve the delta (the digest it names differs) is dropped and fetched
// again, so the cache never turns a good delta into an error.
func LatestTagged(ctx context.Context, s blob.Store, key, known string, bases *BaseCache) (*manifest.Manifest, string, error) {
	data, tag, err := blob.GetTagged(ctx, s, names.LatestKey(key), known)
	if errors.Is(err, blob.ErrNotModified) {
		return nil, known, err
	}
	if errors.Is(err, blob.ErrNotFound) {
		return nil, "", notFound(fmt.Sprintf("no replica of %s in %s", key, s))
	}
	if err != nil {
		return nil, "", fmt.Errorf("fetch latest manifest of %s: %w", key, err)
	}
	fetch := BaseFetcher(ctx, s, key)
	cachedFetch := fetch
	usedCache := false
	var fetchedSeq uint64
	var fetched []byte // a base fetched, cached once the delta resolved
	if bases != nil {
		cachedFetch = func(seq uint64) ([]byte, error) {
			if b := bases.get(seq); b != nil {
				usedCache = true
				return b, nil
			}
			b, err := fetch(seq)
			fetchedSeq, fetched = seq, b
			return b, err
		}
	}
	m, _, err := manifest.Resolve(data, cachedFetch)
	if err != nil && usedCache {
		bases.drop()
		m, _, err = manifest.Resolve(data, cachedFetch)
	}
	if err != nil {
		return nil, "", fmt.Errorf("latest manifest of %s: %w", key, err)
	}
	if fetched != nil {
		bases.put(fetchedSeq, fetched) // verified: the delta applied to it
	}
	if err := checkName(m, key); err != nil {
		return nil, "", fmt.Errorf("latest manifest of %s: %w", key, err)
	}
	return m, tag, nil
}
