package copier

import (
	"bytes"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// DefaultFullEvery is how many versions a full manifest serves as the
// base of delta manifests, itself included, before the next full one at
// most (config max_delta_chain). manifest.WantFull starts a new base
// sooner when the deltas since the last one add up to its size.
const DefaultFullEvery = 1024

// deltaBase is the full manifest this process last published to a
// target, which later versions are encoded against. It is kept as the
// compressed object that was put (a few hundred bytes for a small
// database, whose decoded chunk 0 alone is the whole file) and decoded
// when the next version is published: a process holding 100,000 idle
// databases keeps their bases at a fraction of their size.
type deltaBase struct {
	enc    []byte // the full manifest as published; nil: no base
	seq    uint64 // its version
	deltas int    // delta manifests published against it
	bytes  int    // their encoded size
	last   uint64 // the version last published to the target
}

// manifest decodes the base, or returns nil when there is none or it
// does not decode (the caller then publishes a full manifest).
func (b *deltaBase) manifest() *manifest.Manifest {
	if b.enc == nil {
		return nil
	}
	m, err := manifest.Decode(b.enc)
	if err != nil {
		return nil
	}
	return m
}

// wireEncoding returns what to publish for m in target ti, under
// manifests/SEQ and as latest: a delta against the target's base when
// there is one that is recent enough, the delta is small, and the
// target's latest is still the version this process published last (so
// that the base is retained: a collection keeps the base of the latest
// and of every retained delta), else enc (the full manifest). When the
// chain rule (manifest.WantFull) starts a new base while the delta is
// still small, manifests/SEQ gets the full manifest (the new base) and
// latest that delta: a new base then costs one full upload, not two.
func (c *Copier) wireEncoding(st *dbState, ti int, m *manifest.Manifest, enc []byte) (wire, latest []byte) {
	if c.opts.FullEvery <= 1 || ti >= len(st.bases) || ti >= len(st.latest) {
		return enc, enc
	}
	b := st.bases[ti]
	if g := st.latest[ti]; g.version == "" || g.seq != b.last {
		return enc, enc
	}
	if b.enc == nil || b.seq >= m.Seq {
		return enc, enc
	}
	base := b.manifest()
	if base == nil || base.Seq != b.seq || base.Name != m.Name || base.ChunkSize != m.ChunkSize {
		return enc, enc
	}
	delta, err := manifest.EncodeDelta(m, base)
	switch {
	case err != nil:
		return enc, enc
	case !manifest.WantFull(len(enc), len(delta), b.bytes, b.deltas, c.opts.FullEvery):
		return delta, delta
	case manifest.SmallDelta(len(enc), len(delta)):
		return enc, delta
	}
	return enc, enc
}

// publishedWires records what m was published as in every target (full
// manifests become the targets' bases) and returns the bytes of manifest
// objects put per target, for the statistics: the first target's.
func (c *Copier) publishedWires(st *dbState, m *manifest.Manifest, enc []byte, wires [][]byte) int {
	if len(st.bases) != len(wires) {
		st.bases = make([]deltaBase, len(wires))
	}
	var kept []byte // one copy of enc for every target it is the base of
	for ti, w := range wires {
		if len(w) == len(enc) && &w[0] == &enc[0] {
			if kept == nil {
				kept = bytes.Clone(enc)
			}
			st.bases[ti] = deltaBase{enc: kept, seq: m.Seq}
		} else {
			st.bases[ti].deltas++
			st.bases[ti].bytes += len(w)
		}
		st.bases[ti].last = m.Seq
	}
	if len(wires) == 0 {
		return len(enc)
	}
	return len(wires[0])
}
