package copier

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// Inline chunks (docs/FORMAT.md, "Inline chunks"). A version published as
// latest only (no history object) carries the few chunks it needs that
// are in no chunk object nor pack inside its latest object, instead of one
// chunks/HASH PUT each: a one-row commit then costs one PUT. A chunk that
// lives only inline is carried again by the next latest while that
// version references it (its bytes come from the upload record, which is
// the full manifest with its inline chunks, or from the spool, which
// keeps them staged); a version that no longer references it drops it.
// Before a version gets its history object, its inline chunks are put as
// chunks/HASH objects: history objects never carry any, so point-in-time
// restores, delta bases, retention and collections read them as before.
// Neither the known-chunk cache nor the upload record counts an inline
// chunk as stored.

// Defaults of the inline bound: a version carries its missing chunks
// inline only when they are at most this many and this many bytes (raw);
// more (a bulk load, a large transaction) go to chunks/ or packs.
const (
	DefaultInlineChunks = 4
	InlineMaxBytes      = 256 << 10
)

// chooseInline splits todo, the chunks of m the last upload (up) does not
// hold in the store, into those m's latest object carries inline (with
// their bytes) and those to upload as before. Candidates are chunks not
// known stored that are staged or inline in the upload record; they go
// inline when they fit the bound and m is not due for a history object.
// Beyond the bound, carried chunks that are not staged are put now
// (their bytes are only in the record), the others go to uploadChunks.
func (c *Copier) chooseInline(ctx context.Context, d *spool.Dir, at *attempt, m, up *manifest.Manifest, todo []manifest.Hash) (map[manifest.Hash][]byte, []manifest.Hash, error) {
	var carried map[manifest.Hash][]byte
	if up != nil {
		carried = up.Inline
	}
	if c.opts.InlineChunks < 0 || c.wantHistory(at, time.Now()) {
		return nil, todo, c.putCarried(ctx, d, at, carried, todo)
	}
	var cands, rest []manifest.Hash
	size := 0
	for _, h := range todo {
		if _, known := c.known.has(h); known {
			rest = append(rest, h)
			continue
		}
		if carried[h] == nil && !d.HasChunk(h) {
			rest = append(rest, h) // uploadChunk checks the store
			continue
		}
		cands = append(cands, h)
		if len(cands) > c.opts.InlineChunks {
			break // over the bound (a bulk load): no need to look further
		}
		size += chunkLenOf(m, h)
	}
	if len(cands) == 0 || len(cands) > c.opts.InlineChunks || size > InlineMaxBytes {
		return nil, todo, c.putCarried(ctx, d, at, carried, todo)
	}
	inline := make(map[manifest.Hash][]byte, len(cands))
	for _, h := range cands {
		data := carried[h]
		if data == nil {
			var err error
			if data, err = c.readStaged(d, m, h); err != nil {
				return nil, nil, err
			}
		}
		inline[h] = data
	}
	return inline, rest, nil
}

// chunkLenOf returns the length of chunk h of m (at its first index).
func chunkLenOf(m *manifest.Manifest, h manifest.Hash) int {
	for i, x := range m.Chunks {
		if x == h {
			return manifest.ChunkLen(i, m.Length, m.ChunkSize)
		}
	}
	return int(m.ChunkSize)
}

// putCarried puts the chunks of todo that the upload record carries
// inline and the spool does not hold (uploadChunks could not send them)
// as chunk objects: uploadChunk then finds them known.
func (c *Copier) putCarried(ctx context.Context, d *spool.Dir, at *attempt, carried map[manifest.Hash][]byte, todo []manifest.Hash) error {
	if len(carried) == 0 {
		return nil
	}
	out := map[manifest.Hash][]byte{}
	for _, h := range todo {
		if data := carried[h]; data != nil && !d.HasChunk(h) {
			if _, known := c.known.has(h); !known {
				out[h] = data
			}
		}
	}
	return c.storeInline(ctx, at, out)
}

// storeInline puts chunks (inline until now) as chunks/HASH objects in
// every target and records them known.
func (c *Copier) storeInline(ctx context.Context, at *attempt, chunks map[manifest.Hash][]byte) error {
	hs := make([]manifest.Hash, 0, len(chunks))
	for h := range chunks {
		hs = append(hs, h)
	}
	return c.parallel(ctx, hs, func(ctx context.Context, h manifest.Hash) error {
		obj := manifest.EncodeChunk(chunks[h])
		key := names.ChunkKey(h.String())
		for _, t := range c.opts.Targets {
			if err := c.do(ctx, at, func(ctx context.Context) error { return t.Put(ctx, key, obj) }); err != nil {
				return fmt.Errorf("store inline chunk %s in %s: %w", h, t, err)
			}
		}
		c.known.add(h, nil)
		c.stats.chunks.Add(1)
		c.stats.chunkBytes.Add(int64(len(obj)))
		c.mu.Lock()
		at.st.chunks++
		at.st.chunkBytes += int64(len(obj))
		c.mu.Unlock()
		return nil
	})
}

// withInline returns m carrying inline (none: m and enc as they are),
// re-encoded.
func withInline(m *manifest.Manifest, enc []byte, inline map[manifest.Hash][]byte) (*manifest.Manifest, []byte, error) {
	if len(inline) == 0 {
		return m, enc, nil
	}
	p := *m
	p.Inline = maps.Clone(inline)
	penc, err := p.Encode()
	if err != nil {
		return nil, nil, fmt.Errorf("encode manifest %d with its inline chunks: %w", m.Seq, err)
	}
	return &p, penc, nil
}

// plainOf returns m without inline chunks and its encoding (m and enc
// when it has none): what history objects, delta bases and the chain
// rule's sizes are made of.
func plainOf(m *manifest.Manifest, enc []byte) (*manifest.Manifest, []byte, error) {
	if len(m.Inline) == 0 {
		return m, enc, nil
	}
	p := m.WithoutInline()
	penc, err := p.Encode()
	if err != nil {
		return nil, nil, fmt.Errorf("encode manifest %d: %w", m.Seq, err)
	}
	return p, penc, nil
}

// inlineLatests returns the latest objects to put per target for m, which
// carries inline chunks (encoded as enc): latests are the encodings of
// its plain form (plainEnc) that wireEncoding chose, full (plainEnc
// itself) or a delta against the target's base, re-encoded with the
// inline chunks.
func (c *Copier) inlineLatests(st *dbState, m *manifest.Manifest, enc, plainEnc []byte, latests [][]byte) ([][]byte, error) {
	out := make([][]byte, len(latests))
	for ti, l := range latests {
		if len(l) == len(plainEnc) && &l[0] == &plainEnc[0] {
			out[ti] = enc
			continue
		}
		base := st.bases[ti].manifest()
		if base == nil {
			return nil, fmt.Errorf("manifest %d: the delta base of target %d does not decode", m.Seq, ti)
		}
		d, err := manifest.EncodeDelta(m, base)
		if err != nil {
			return nil, err
		}
		out[ti] = d
	}
	return out, nil
}

// publishable returns what publishManifest puts for m (encoded as enc):
// the plain manifest, its encoding and the wire and latest encodings per
// target (wireEncoding), whether m gets its history object, and the
// latest objects to put. A version due for history first stores its
// inline chunks (history objects never carry any) and is published plain.
func (c *Copier) publishable(ctx context.Context, at *attempt, due bool, m *manifest.Manifest, enc []byte) (pub publication, err error) {
	pub.m, pub.enc = m, enc
	if pub.plain, pub.plainEnc, err = plainOf(m, enc); err != nil {
		return pub, err
	}
	pub.wires = make([][]byte, len(c.opts.Targets))
	pub.latests = make([][]byte, len(c.opts.Targets))
	for ti := range c.opts.Targets {
		if at.repacked {
			// New locations of unchanged chunks: a delta could not
			// say them (repack.go).
			pub.wires[ti], pub.latests[ti] = pub.plainEnc, pub.plainEnc
			continue
		}
		pub.wires[ti], pub.latests[ti] = c.wireEncoding(at.st, ti, pub.plain, pub.plainEnc)
	}
	pub.hist = due || c.startsBase(pub.latests, pub.plainEnc)
	pub.puts = pub.latests
	if len(m.Inline) == 0 {
		return pub, nil
	}
	if !pub.hist {
		if pub.puts, err = c.inlineLatests(at.st, m, enc, pub.plainEnc, pub.latests); err == nil {
			return pub, nil
		}
		c.log.Warn("storing inline chunks as chunk objects", "seq", m.Seq, "err", err)
	}
	if err := c.storeInline(ctx, at, m.Inline); err != nil {
		return pub, err
	}
	pub.m, pub.enc, pub.puts = pub.plain, pub.plainEnc, pub.latests
	return pub, nil
}

// publication is what publishManifest puts for one version (publishable).
type publication struct {
	m              *manifest.Manifest // as recorded uploaded (with inline chunks, if any)
	enc            []byte
	plain          *manifest.Manifest
	plainEnc       []byte
	wires, latests [][]byte // of the plain manifest (wireEncoding)
	puts           [][]byte // the latest objects
	hist           bool
}

// keepInlineStaged reports whether staged chunk h must stay in the spool
// after m is recorded uploaded: m carries it inline only.
func keepInlineStaged(m *manifest.Manifest, h manifest.Hash) bool { return m.Inline[h] != nil }

// historyEncoding returns the history object of the upload record up
// (encoded as upEnc): its inline chunks are first stored as chunk
// objects, and the object is the plain manifest.
func (c *Copier) historyEncoding(ctx context.Context, at *attempt, up *manifest.Manifest, upEnc []byte) ([]byte, error) {
	if len(up.Inline) == 0 {
		return upEnc, nil
	}
	if err := c.storeInline(ctx, at, up.Inline); err != nil {
		return nil, err
	}
	_, enc, err := plainOf(up, upEnc)
	return enc, err
}
