package copier

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// DefaultPackBytes bounds a pack object (config pack_bytes): 64 chunks of
// 64 KiB.
const DefaultPackBytes = 4 << 20

// PackMinChunks is the fewest chunks an upload sends in packs: with fewer
// new chunks, each is its own chunks/HASH object, as before packs.
const PackMinChunks = 4

// packParallelism bounds the packs of one upload sent at once (each is
// held in memory: at most packParallelism × PackBytes).
const packParallelism = 4

// uploadChunks sends the chunks of m in todo that the targets may lack
// and returns the locations of those that are in packs: sent in packs now
// or known (from an earlier upload of this process) to be in one. A
// staged chunk whose location is unknown is uploaded again; an unstaged
// one must be in the last upload (up), stored as its own object, or in a
// pack the store's latest names (packedInLatest).
func (c *Copier) uploadChunks(ctx context.Context, d *spool.Dir, at *attempt, m, up *manifest.Manifest, todo []manifest.Hash, inUploaded map[manifest.Hash]bool) (map[manifest.Hash]manifest.Location, error) {
	at.placed.reset()
	var send, singles []manifest.Hash
	for _, h := range todo {
		loc, known := c.known.has(h)
		switch {
		case known && loc != nil:
			// In a pack already: reuse its location. A staged copy
			// stays until a manifest naming the location is published
			// (removeUploadedChunks), as below.
			at.placed.set(h, *loc)
			at.st.chunksDone.Add(1)
		case !known && d.HasChunk(h):
			send = append(send, h)
		default:
			singles = append(singles, h) // uploadChunk decides
		}
	}
	groups := c.packGroups(m, send)
	if groups == nil {
		singles = append(singles, send...)
	}
	err := c.parallel(ctx, singles, func(ctx context.Context, h manifest.Hash) error {
		if err := c.uploadChunk(ctx, d, at, m, h, inUploaded[h]); err != nil {
			return err
		}
		at.st.chunksDone.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = runParallel(c, ctx, groups, packParallelism, func([]manifest.Hash) string { return "upload pack" },
		func(ctx context.Context, g []manifest.Hash) error {
			got, err := c.uploadPack(ctx, d, at, m, g)
			for h, l := range got {
				at.placed.set(h, l)
			}
			return err
		})
	if err != nil {
		return nil, err
	}
	return at.placed.all(), nil
}

// placements collects the locations an upload attempt finds or makes for
// its chunks (uploads run concurrently). The manifest is published with
// exactly these (and the upload record's): never through the known set,
// whose entries may be dropped meanwhile.
type placements struct {
	mu   sync.Mutex
	locs map[manifest.Hash]manifest.Location
}

func (p *placements) set(h manifest.Hash, l manifest.Location) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.locs == nil {
		p.locs = map[manifest.Hash]manifest.Location{}
	}
	p.locs[h] = l
}

func (p *placements) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.locs = nil
}

func (p *placements) all() map[manifest.Hash]manifest.Location {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.locs)
}

// packedInLatest looks for unstaged chunk h, in no chunk object and not
// in the upload record (damaged, or made for other targets), in the
// first target's latest manifest of the database (one GET, or two for a
// delta, once per attempt): when it places h in a pack that every target
// holds, the pack is touched (rule 5 (c) of docs/FORMAT.md, so no
// collection deletes it before the manifest is published) and h gets
// that location. It reports whether it found h.
func (c *Copier) packedInLatest(ctx context.Context, key string, at *attempt, h manifest.Hash) (bool, error) {
	stored, err := at.latestLocations(ctx, c, key)
	if err != nil {
		return false, err
	}
	l, ok := stored[h]
	if !ok {
		return false, nil
	}
	pk := names.PackKey(l.Pack.String())
	for _, t := range c.opts.Targets {
		var ok bool
		err := c.do(ctx, at, func(ctx context.Context) (err error) { ok, err = present(ctx, t, pk); return err })
		if err != nil {
			return false, fmt.Errorf("check pack %s in %s: %w", l.Pack, t, err)
		}
		if !ok {
			return false, nil
		}
	}
	at.placed.set(h, l)
	return true, nil
}

// latestLocations returns the chunk locations of the first target's
// latest manifest of key, read once per attempt (none when it has no
// latest or it does not resolve).
func (at *attempt) latestLocations(ctx context.Context, c *Copier, key string) (map[manifest.Hash]manifest.Location, error) {
	at.latestMu.Lock()
	defer at.latestMu.Unlock()
	if at.latestRead {
		return at.latestLocs, nil
	}
	t := c.opts.Targets[0]
	var m *manifest.Manifest
	err := c.do(ctx, at, func(ctx context.Context) (err error) {
		m, err = restore.Latest(ctx, t, key)
		if errors.Is(err, manifest.ErrCorrupt) {
			err = nil // nothing to learn from it
		}
		return err
	})
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("read latest manifest in %s: %w", t, err)
	}
	at.latestRead = true
	if m != nil {
		at.latestLocs = m.Locs
	}
	return at.latestLocs, nil
}

// packGroups splits the staged chunks to send into packs of at most
// PackBytes (each record is at most one byte more than its chunk), of
// even sizes, in the order given (file order: a restore reads a pack's
// records together). It returns nil when they are too few to pack.
func (c *Copier) packGroups(m *manifest.Manifest, send []manifest.Hash) [][]manifest.Hash {
	if c.opts.PackBytes <= 0 || len(send) < PackMinChunks {
		return nil
	}
	perPack := c.opts.PackBytes / (int(m.ChunkSize) + 1)
	if perPack < 2 {
		return nil
	}
	n := (len(send) + perPack - 1) / perPack
	per := (len(send) + n - 1) / n
	var groups [][]manifest.Hash
	for len(send) > 0 {
		k := min(per, len(send))
		groups = append(groups, send[:k])
		send = send[k:]
	}
	return groups
}

// uploadPack sends staged chunks g of m as one pack object to every
// target and returns their locations. Rebuilt from the same chunks (a
// retry), the pack is the same object under the same key.
func (c *Copier) uploadPack(ctx context.Context, d *spool.Dir, at *attempt, m *manifest.Manifest, g []manifest.Hash) (map[manifest.Hash]manifest.Location, error) {
	var b manifest.PackBuilder
	for _, h := range g {
		data, err := c.readStaged(d, m, h)
		if err != nil {
			return nil, err
		}
		b.Add(h, manifest.EncodeChunk(data))
	}
	obj, name, locs := b.Finish()
	key := names.PackKey(name.String())
	for _, t := range c.opts.Targets {
		if err := c.do(ctx, at, func(ctx context.Context) error { return t.Put(ctx, key, obj) }); err != nil {
			return nil, fmt.Errorf("upload pack %s (%d chunks) to %s: %w", name, len(g), t, err)
		}
	}
	failpoint.Hit("upload-mid-chunks")
	c.sizes.add(name, int64(len(obj)))
	c.stats.packs.Add(1)
	c.stats.chunks.Add(int64(len(g)))
	c.stats.chunkBytes.Add(int64(len(obj)))
	c.mu.Lock()
	at.st.chunks += int64(len(g))
	at.st.chunkBytes += int64(len(obj))
	c.mu.Unlock()
	// The staged chunks stay until the manifest naming their locations
	// is published (removeUploadedChunks): a process that dies before
	// it finds them staged and packs them again, whereas a chunk removed
	// now would be in no chunks/HASH object for it to find.
	for _, h := range g {
		l := locs[h]
		c.known.add(h, &l)
		at.st.chunksDone.Add(1)
	}
	return locs, nil
}

// withLocations returns m with the locations of its packed chunks: those
// of the last upload (up) for the chunks m still references, and locs
// (this upload's), re-encoded. Without any, m and enc are returned as
// they are (the staged manifest never has locations).
func withLocations(m *manifest.Manifest, enc []byte, up *manifest.Manifest, locs map[manifest.Hash]manifest.Location) (*manifest.Manifest, []byte, error) {
	all := map[manifest.Hash]manifest.Location{}
	if up != nil && len(up.Locs) > 0 {
		for _, h := range m.Chunks[min(1, len(m.Chunks)):] {
			if l, ok := up.Locs[h]; ok {
				all[h] = l
			}
		}
	}
	maps.Copy(all, locs)
	if len(all) == 0 {
		return m, enc, nil
	}
	p := *m
	p.Locs = all
	penc, err := p.Encode()
	if err != nil {
		return nil, nil, fmt.Errorf("encode manifest %d with its chunk locations: %w", m.Seq, err)
	}
	return &p, penc, nil
}
