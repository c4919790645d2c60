package copier

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// Repacking (docs/FORMAT.md, "Repacking"). A pack is kept while any kept
// manifest references any of its records, so a pack whose chunks were
// mostly rewritten by later versions keeps its dead bytes. When the
// version being published references less than RepackThreshold percent
// of a pack's bytes, the copier reads those live records back from the
// first target (ranged GETs, each record verified against its hash as
// every reader does), sends them in a new pack to every target and
// publishes the version with their new locations, as a full manifest (a
// delta only places the chunks it changes, so it could not say where
// unchanged chunks moved): it is a new delta base, and gets its history
// object. The old packs are no longer referenced by the latest version
// and age out like any unreferenced object once retention drops the
// versions that reference them (gc is unchanged).
//
// Bounds: at most RepackBytes of live records (2×pack_bytes by default)
// from at most RepackMaxPacks packs per upload, and only when the bytes
// the chosen packs would free are at least the full manifest's size (the
// price of the new base). What is left is taken by later uploads.
//
// Failures never change what is published: a failed or corrupt read, a
// missing pack or a failed PUT of the new pack is logged and counted
// (Snapshot.RepackErrors), and the version is published with the old
// locations. A new pack put before the failure (or before the copier
// died) is referenced by nothing and a collection deletes it after the
// grace period.

// Repacking defaults and bounds.
const (
	// DefaultRepackThreshold is the percentage of a pack's bytes that the
	// version being published must reference for the pack to be left
	// alone: under it, those records are re-sent in a new pack. At 50%,
	// the packs a version references hold at most about twice its
	// stored bytes, and a repack writes fewer bytes than it frees.
	DefaultRepackThreshold = 50
	// RepackMaxPacks bounds the packs one upload repacks.
	RepackMaxPacks = 64
	// repackRunGap is the largest hole between two live records of a
	// pack that one ranged GET reads through.
	repackRunGap = 256 << 10
	// repackMaxRun bounds one such GET (but for a single record), and
	// so the bytes each of the packParallelism reads holds.
	repackMaxRun = 4 << 20
	// packSizesLimit bounds the pack sizes a process remembers (under
	// 100 bytes each); past it they are forgotten and asked again.
	packSizesLimit = 1 << 16
)

// repackDefaults applies the repacking defaults to opts (whose PackBytes
// is set).
func repackDefaults(opts *Options) {
	if opts.RepackThreshold == 0 {
		opts.RepackThreshold = DefaultRepackThreshold
	}
	opts.RepackThreshold = min(opts.RepackThreshold, 100)
	if opts.RepackBytes <= 0 {
		opts.RepackBytes = 2 * max(opts.PackBytes, 0)
	}
}

// packSizes remembers the size of packs: those this process built, and
// those it asked the first target about. Packs are immutable, so a size
// never goes stale.
type packSizes struct {
	mu sync.Mutex
	m  map[manifest.Hash]int64
}

func (p *packSizes) get(h manifest.Hash) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.m[h]
	return n, ok
}

func (p *packSizes) add(h manifest.Hash, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= packSizesLimit {
		p.m = map[manifest.Hash]int64{}
	}
	p.m[h] = n
}

// missingPack is the size remembered for a pack found missing in the
// first target: it is logged and counted once (the versions that
// reference it cannot be restored from there, which gc reports as
// missing chunks) and this process never tries to repack it again.
const missingPack = -1

// packMissing remembers pack h missing from t (for the process's
// lifetime: a pack does not come back) and logs it.
func (c *Copier) packMissing(at *attempt, h manifest.Hash, t blob.Store) {
	c.sizes.add(h, missingPack)
	c.log.Warn("a pack the version being published references is missing; not repacking it", "db", at.st.key, "pack", h, "target", t.String())
}

// liveRecord is a record of a pack that the version references.
type liveRecord struct {
	hash  manifest.Hash
	loc   manifest.Location
	index int // the chunk's first index in the version
	n     int // the chunk's length
	raw   []byte
}

// packUse is what a version references of one pack.
type packUse struct {
	pack   manifest.Hash
	size   int64 // known or estimated
	live   int64 // bytes of the records referenced
	maxEnd int64
	recs   []liveRecord
}

// repack re-sends the live records of m's sparse packs in new packs (see
// above) and returns m and its encoding with their new locations, or as
// they were when nothing is worth repacking or repacking failed. It
// returns an error only when ctx is done. It gives up once the upload
// attempt that began at began is half way to its publish deadline
// (GCGrace/4, upload.go): a slow repack must not make every attempt
// start again.
func (c *Copier) repack(ctx context.Context, at *attempt, m *manifest.Manifest, enc []byte, began time.Time) (*manifest.Manifest, []byte, error) {
	at.repacked = false
	if c.opts.RepackThreshold <= 0 || c.opts.PackBytes <= 0 || len(m.Locs) == 0 || len(c.opts.Targets) == 0 {
		return m, enc, nil
	}
	cost := len(enc) // the new base
	if c.opts.FullEvery <= 1 {
		cost = 0 // every version is full anyway
	}
	rctx, cancel := context.WithDeadline(ctx, began.Add(c.opts.GCGrace/8))
	defer cancel()
	if rctx.Err() != nil {
		return m, enc, nil // the chunks took the time: no repack this once
	}
	chosen := c.chooseRepack(rctx, at, m, cost)
	if len(chosen) == 0 {
		return m, enc, nil
	}
	moved, err := c.repackRecords(rctx, at, m, chosen)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("repack: %w", err)
		}
		if rctx.Err() != nil {
			err = fmt.Errorf("gave up at half the upload's publish deadline (gc_grace/8 = %v): %w", c.opts.GCGrace/8, err)
		}
		c.stats.repackErrors.Add(1)
		c.log.Warn("repacking failed; publishing the version with the old locations of its chunks", "db", at.st.key, "seq", m.Seq, "err", err)
		return m, enc, nil
	}
	p := *m
	p.Locs = maps.Clone(m.Locs)
	maps.Copy(p.Locs, moved)
	penc, err := p.Encode()
	if err != nil {
		c.stats.repackErrors.Add(1)
		c.log.Warn("repacking failed; publishing the version with the old locations of its chunks", "db", at.st.key, "seq", m.Seq, "err", err)
		return m, enc, nil
	}
	at.repacked = true
	var live int64
	for _, u := range chosen {
		live += u.live
	}
	c.stats.repacks.Add(1)
	c.stats.repackedPacks.Add(int64(len(chosen)))
	c.stats.repackedBytes.Add(live)
	c.log.Debug("repacked", "db", at.st.key, "seq", m.Seq, "packs", len(chosen), "records", len(moved), "bytes", live)
	return &p, penc, nil
}

// packUses sums, per pack, the records m references (one per located
// hash), without listing them: a large database has many.
func packUses(m *manifest.Manifest) map[manifest.Hash]*packUse {
	uses := map[manifest.Hash]*packUse{}
	for _, l := range m.Locs {
		u := uses[l.Pack]
		if u == nil {
			u = &packUse{pack: l.Pack}
			uses[l.Pack] = u
		}
		u.live += int64(l.Length)
		u.maxEnd = max(u.maxEnd, l.End())
	}
	return uses
}

// listRecords fills in the records m references in the chosen packs,
// each at its chunk's first index.
func listRecords(m *manifest.Manifest, chosen []*packUse) {
	in := make(map[manifest.Hash]*packUse, len(chosen))
	for _, u := range chosen {
		in[u.pack] = u
	}
	seen := map[manifest.Hash]bool{}
	for i := 1; i < len(m.Chunks); i++ {
		h := m.Chunks[i]
		l, ok := m.Locs[h]
		if !ok || in[l.Pack] == nil || seen[h] {
			continue
		}
		seen[h] = true
		u := in[l.Pack]
		u.recs = append(u.recs, liveRecord{hash: h, loc: l, index: i, n: manifest.ChunkLen(i, m.Length, m.ChunkSize)})
	}
}

// chooseRepack returns the packs of m to repack: those whose referenced
// bytes are under the threshold, least live first, within the bounds,
// when together they free at least cost bytes (the full manifest that
// publishing their new locations costs, when versions are otherwise
// deltas). A pack's size is the one this process knows, else the first
// target's answer to a stat (at most RepackMaxPacks per upload,
// packParallelism at a time), else at least the end of its last record
// that m references: an underestimate, which only repacks less.
func (c *Copier) chooseRepack(ctx context.Context, at *attempt, m *manifest.Manifest, cost int) []*packUse {
	uses := packUses(m)
	all := slices.Collect(maps.Values(uses))
	threshold := int64(c.opts.RepackThreshold)
	// Most promising first (least live for what m shows of them), so
	// that the stat budget goes where it can matter.
	slices.SortFunc(all, func(a, b *packUse) int {
		return cmp.Or(cmp.Compare(a.live*b.maxEnd, b.live*a.maxEnd), bytes.Compare(a.pack[:], b.pack[:]))
	})
	var unknown []*packUse
	for _, u := range all {
		if size, ok := c.sizes.get(u.pack); ok {
			u.size = size // missingPack when found missing
		} else if len(unknown) < RepackMaxPacks && u.live*100 < threshold*manifest.MaxPackSize {
			unknown = append(unknown, u)
		}
	}
	// Errors are the pack's own (statPack): nothing to return.
	_ = runParallel(c, ctx, unknown, packParallelism, func(u *packUse) string { return "stat pack " + u.pack.String() },
		func(ctx context.Context, u *packUse) error {
			u.size = c.statPack(ctx, at, u.pack)
			return nil
		})
	var cands []*packUse
	for _, u := range all {
		if u.size == missingPack {
			continue
		}
		u.size = max(u.size, u.maxEnd)
		if u.live*100 < threshold*u.size {
			cands = append(cands, u)
		}
	}
	slices.SortFunc(cands, func(a, b *packUse) int {
		return cmp.Or(cmp.Compare(a.live*b.size, b.live*a.size), bytes.Compare(a.pack[:], b.pack[:]))
	})
	var chosen []*packUse
	var live, freed int64
	for _, u := range cands {
		if len(chosen) == RepackMaxPacks {
			break
		}
		if live+u.live > int64(c.opts.RepackBytes) {
			continue
		}
		chosen = append(chosen, u)
		live += u.live
		freed += u.size - u.live
	}
	if len(chosen) == 0 || freed < int64(cost) {
		return nil
	}
	listRecords(m, chosen)
	return chosen
}

// statPack asks the first target for the size of pack h (0: unknown,
// missingPack: not there). A store that cannot tell, or fails, leaves
// it unknown.
func (c *Copier) statPack(ctx context.Context, at *attempt, h manifest.Hash) int64 {
	t := c.opts.Targets[0]
	st, ok := t.(blob.Stater)
	if !ok {
		return 0
	}
	var info blob.ObjectInfo
	err := c.do(ctx, at, func(ctx context.Context) (err error) {
		info, err = st.Stat(ctx, names.PackKey(h.String()))
		return err
	})
	switch {
	case errors.Is(err, blob.ErrNotFound):
		c.stats.repackErrors.Add(1)
		c.packMissing(at, h, t)
		return missingPack
	case err != nil:
		return 0
	}
	size := min(max(info.Size, 0), manifest.MaxPackSize)
	c.sizes.add(h, size)
	return size
}

// repackRecords reads the live records of the chosen packs from the
// first target, verifies them, sends them in new packs (file order, at
// most PackBytes each) to every target and returns their new locations.
// The known set and the pack sizes learn them once every pack is in
// every target.
func (c *Copier) repackRecords(ctx context.Context, at *attempt, m *manifest.Manifest, chosen []*packUse) (map[manifest.Hash]manifest.Location, error) {
	err := runParallel(c, ctx, chosen, packParallelism, func(u *packUse) string { return "repack pack " + u.pack.String() },
		func(ctx context.Context, u *packUse) error { return c.readLive(ctx, at, u) })
	if err != nil {
		return nil, err
	}
	var recs []liveRecord
	for _, u := range chosen {
		recs = append(recs, u.recs...)
	}
	slices.SortFunc(recs, func(a, b liveRecord) int { return cmp.Compare(a.index, b.index) })
	moved := make(map[manifest.Hash]manifest.Location, len(recs))
	sizes := map[manifest.Hash]int64{}
	for len(recs) > 0 {
		var b manifest.PackBuilder
		k := 0
		for k < len(recs) && (k == 0 || b.Len()+len(recs[k].raw) <= c.opts.PackBytes) {
			b.Add(recs[k].hash, recs[k].raw)
			k++
		}
		recs = recs[k:]
		obj, name, locs := b.Finish()
		key := names.PackKey(name.String())
		for _, t := range c.opts.Targets {
			if err := c.do(ctx, at, func(ctx context.Context) error { return t.Put(ctx, key, obj) }); err != nil {
				return nil, fmt.Errorf("put repacked pack %s (%d records) to %s: %w", name, len(locs), t, err)
			}
		}
		sizes[name] = int64(len(obj))
		maps.Copy(moved, locs)
	}
	for h, n := range sizes {
		c.sizes.add(h, n)
	}
	for h, l := range moved {
		c.known.add(h, &l)
	}
	return moved, nil
}

// readLive reads the records of u (sorted by offset) from the first
// target in runs of nearby records, one ranged GET each, and keeps each
// record's bytes once it decodes to its chunk.
func (c *Copier) readLive(ctx context.Context, at *attempt, u *packUse) error {
	t := c.opts.Targets[0]
	key := names.PackKey(u.pack.String())
	slices.SortFunc(u.recs, func(a, b liveRecord) int { return cmp.Compare(a.loc.Offset, b.loc.Offset) })
	for start := 0; start < len(u.recs); {
		off := int64(u.recs[start].loc.Offset)
		end := start + 1
		for end < len(u.recs) && int64(u.recs[end].loc.Offset)-u.recs[end-1].loc.End() <= repackRunGap &&
			u.recs[end].loc.End()-off <= repackMaxRun {
			end++
		}
		n := u.recs[end-1].loc.End() - off
		var run []byte
		err := c.do(ctx, at, func(ctx context.Context) (err error) {
			run, err = t.GetRange(ctx, key, off, n)
			return err
		})
		if errors.Is(err, blob.ErrNotFound) {
			c.packMissing(at, u.pack, t)
		}
		if err != nil {
			return fmt.Errorf("read pack %s in %s: %w", u.pack, t, err)
		}
		for i := start; i < end; i++ {
			r := &u.recs[i]
			if _, err := manifest.PackRecord(run, off, r.loc, r.hash, r.n); err != nil {
				return fmt.Errorf("repack from %s: %w", t, err)
			}
			s := int64(r.loc.Offset) - off
			r.raw = bytes.Clone(run[s : s+int64(r.loc.Length)])
		}
		start = end
	}
	return nil
}
