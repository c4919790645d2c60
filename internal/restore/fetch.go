package restore

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// Fetch plan: how a restore reads every stored chunk of a manifest with
// few requests. A chunk stored as its own object is one GET (once, however
// many times the file repeats it); the records of one pack that a version
// needs are grouped into runs of nearby records, each one ranged GET, so a
// pack that the version mostly needs is read in one request and a pack it
// needs a few records of costs a few small ranges.
const (
	// runGap is the largest hole between two records of a pack that one
	// ranged GET reads through rather than splitting into two requests.
	runGap = 1 << 20
	// maxRun bounds one ranged GET (and the memory a worker holds).
	maxRun = 16 << 20
	// orderedCache is how many fetched units an in-order restore keeps
	// (Write with one worker, a restore to stdout).
	orderedCache = 4
)

// fetchUnit is one request: a chunk object (whole) or a range of a pack.
type fetchUnit struct {
	key    string
	packed bool
	off, n int64 // the range, when packed
	recs   []unitRecord
}

// unitRecord is a chunk the unit holds and the indices where it goes.
type unitRecord struct {
	hash    manifest.Hash
	loc     manifest.Location // when packed
	indices []int
}

// fetchPlan lists the units that hold the stored chunks of m (not chunk 0
// nor all-zero chunks) and, for each chunk index, its unit.
type fetchPlan struct {
	units  []*fetchUnit
	unitOf map[int]int // chunk index -> units index
}

func planFetch(m *manifest.Manifest) *fetchPlan {
	p := &fetchPlan{unitOf: map[int]int{}}
	where := map[manifest.Hash]int{}         // hash -> record position in its unit, via recAt
	recAt := map[manifest.Hash]*unitRecord{} // hash -> its record
	byPack := map[manifest.Hash][]manifest.Hash{}
	var packOrder []manifest.Hash
	for i := 1; i < len(m.Chunks); i++ {
		if _, local := localChunk(m, i); local {
			continue
		}
		h := m.Chunks[i]
		if r := recAt[h]; r != nil {
			r.indices = append(r.indices, i)
			continue
		}
		r := &unitRecord{hash: h, indices: []int{i}}
		recAt[h] = r
		if l, ok := m.Located(h); ok {
			r.loc = l
			if byPack[l.Pack] == nil {
				packOrder = append(packOrder, l.Pack)
			}
			byPack[l.Pack] = append(byPack[l.Pack], h)
			continue
		}
		where[h] = len(p.units)
		p.units = append(p.units, &fetchUnit{key: names.ChunkKey(h.String())})
	}
	for h, u := range where {
		p.units[u].recs = []unitRecord{*recAt[h]}
	}
	for _, pk := range packOrder {
		hs := byPack[pk]
		slices.SortFunc(hs, func(a, b manifest.Hash) int { return int(recAt[a].loc.Offset) - int(recAt[b].loc.Offset) })
		var u *fetchUnit
		for _, h := range hs {
			r := recAt[h]
			if u == nil || r.loc.End()-u.off > maxRun || int64(r.loc.Offset)-(u.off+u.n) > runGap {
				u = &fetchUnit{key: names.PackKey(pk.String()), packed: true, off: int64(r.loc.Offset)}
				p.units = append(p.units, u)
			}
			u.n = max(u.n, r.loc.End()-u.off)
			u.recs = append(u.recs, *r)
		}
	}
	for ui, u := range p.units {
		for _, r := range u.recs {
			for _, i := range r.indices {
				p.unitOf[i] = ui
			}
		}
	}
	return p
}

// fetch reads the unit's bytes: the chunk object, or the pack range. A
// range shorter than planned (a truncated pack) fails its records later.
func (u *fetchUnit) fetch(ctx context.Context, s blob.Store) ([]byte, error) {
	var obj []byte
	var err error
	if u.packed {
		obj, err = s.GetRange(ctx, u.key, u.off, u.n)
	} else {
		obj, err = s.Get(ctx, u.key)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u.key, err)
	}
	return obj, nil
}

// record decodes and verifies record r of the unit's bytes obj.
func (u *fetchUnit) record(obj []byte, r unitRecord, m *manifest.Manifest) ([]byte, error) {
	return u.recordInto(nil, obj, r, m)
}

// recordInto is record decoding into buf (manifest.DecodeChunkInto): the
// result is valid until buf or obj is reused.
func (u *fetchUnit) recordInto(buf, obj []byte, r unitRecord, m *manifest.Manifest) ([]byte, error) {
	i := r.indices[0]
	n := manifest.ChunkLen(i, m.Length, m.ChunkSize)
	if u.packed {
		data, err := manifest.PackRecordInto(buf, obj, u.off, r.loc, r.hash, n)
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", i, err)
		}
		return data, nil
	}
	return chunkFromObject(obj, m, i)
}

// chunkFromObject decodes and verifies chunk i of m from its chunk object.
func chunkFromObject(obj []byte, m *manifest.Manifest, i int) ([]byte, error) {
	h := m.Chunks[i]
	n := manifest.ChunkLen(i, m.Length, m.ChunkSize)
	data, err := manifest.DecodeChunk(obj, h, int(m.ChunkSize))
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", i, err)
	}
	if len(data) != n {
		return nil, fmt.Errorf("chunk %d (%s): %w: %d bytes, want %d", i, h, manifest.ErrCorruptChunk, len(data), n)
	}
	return data, nil
}

// localChunk returns chunk i when it needs no request (chunk 0, an
// all-zero chunk, a chunk the manifest object carries inline, verified
// when it was decoded).
func localChunk(m *manifest.Manifest, i int) ([]byte, bool) {
	n := manifest.ChunkLen(i, m.Length, m.ChunkSize)
	if i == 0 {
		return m.Chunk0, true
	}
	if m.Chunks[i] == manifest.ZeroChunkHash(n) {
		return make([]byte, n), true
	}
	if data, ok := m.Inline[m.Chunks[i]]; ok && len(data) == n {
		return data, true
	}
	return nil, false
}

// writeParallel rebuilds m into w with parallel workers, one unit each at
// a time.
func writeParallel(ctx context.Context, s blob.Store, m *manifest.Manifest, w io.WriterAt, parallel int) error {
	p := planFetch(m)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	at := func(i int) int64 { return int64(i) * int64(m.ChunkSize) }
	for i := range m.Chunks {
		if data, ok := localChunk(m, i); ok {
			if _, err := w.WriteAt(data, at(i)); err != nil {
				return err
			}
		}
	}
	var wg sync.WaitGroup
	units := make(chan *fetchUnit)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				// A bug must fail this restore, not the process that
				// embeds it.
				if v := recover(); v != nil {
					cancel(fmt.Errorf("restore: internal error (recovered panic): %v", v))
				}
			}()
			// One decode buffer per worker: a chunk is written before
			// the next is decoded into it.
			buf := make([]byte, 0, manifest.DecodeChunkBufLen(int(m.ChunkSize)))
			for u := range units {
				if err := writeUnit(ctx, s, m, w, u, at, buf); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, u := range p.units {
		select {
		case units <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(units)
	wg.Wait()
	return context.Cause(ctx)
}

func writeUnit(ctx context.Context, s blob.Store, m *manifest.Manifest, w io.WriterAt, u *fetchUnit, at func(int) int64, buf []byte) error {
	if ctx.Err() != nil {
		return nil // cancelled by another worker's error
	}
	obj, err := u.fetch(ctx, s)
	if err != nil {
		return err
	}
	for _, r := range u.recs {
		data, err := u.recordInto(buf, obj, r, m)
		if err != nil {
			return err
		}
		for _, i := range r.indices {
			if _, err := w.WriteAt(data, at(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachChunk calls fn with every chunk of m in file order, fetching each
// unit once while it stays among the orderedCache last used (a pack's
// records are in file order when a bulk upload wrote them).
func eachChunk(ctx context.Context, s blob.Store, m *manifest.Manifest, fn func(i int, data []byte) error) error {
	p := planFetch(m)
	type cached struct {
		unit int
		obj  []byte
	}
	var cache []cached
	for i := range m.Chunks {
		data, ok := localChunk(m, i)
		if !ok {
			ui := p.unitOf[i]
			u := p.units[ui]
			k := slices.IndexFunc(cache, func(c cached) bool { return c.unit == ui })
			var obj []byte
			if k >= 0 {
				obj = cache[k].obj
			} else {
				var err error
				if obj, err = u.fetch(ctx, s); err != nil {
					return err
				}
				if len(cache) == orderedCache {
					cache = cache[1:]
				}
				cache = append(cache, cached{ui, obj})
			}
			r := u.recs[slices.IndexFunc(u.recs, func(r unitRecord) bool { return r.hash == m.Chunks[i] })]
			var err error
			if data, err = u.record(obj, r, m); err != nil {
				return err
			}
		}
		if err := fn(i, data); err != nil {
			return err
		}
	}
	return nil
}
