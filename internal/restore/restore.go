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
	"slices"
	"sort"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// Latest fetches and verifies the newest manifest of the database key,
// resolved against its base when it is a delta (one more GET).
func Latest(ctx context.Context, s blob.Store, key string) (*manifest.Manifest, error) {
	m, _, err := LatestDelta(ctx, s, key)
	return m, err
}

// LatestDelta is Latest that also returns the delta "latest" holds (nil
// for a full manifest), which names its base.
func LatestDelta(ctx context.Context, s blob.Store, key string) (*manifest.Manifest, *manifest.Delta, error) {
	data, err := s.Get(ctx, names.LatestKey(key))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil, notFound(fmt.Sprintf("no replica of %s in %s", key, s))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fetch latest manifest of %s: %w", key, err)
	}
	m, d, err := manifest.Resolve(data, BaseFetcher(ctx, s, key))
	if err != nil {
		return nil, d, fmt.Errorf("latest manifest of %s: %w", key, err)
	}
	if err := checkName(m, key); err != nil {
		return nil, d, fmt.Errorf("latest manifest of %s: %w", key, err)
	}
	return m, d, nil
}

// BaseFetcher returns the function manifest.Resolve fetches the base of a
// delta manifest of key with.
func BaseFetcher(ctx context.Context, s blob.Store, key string) func(uint64) ([]byte, error) {
	return func(seq uint64) ([]byte, error) {
		data, err := s.Get(ctx, names.ManifestKey(key, seq))
		if errors.Is(err, blob.ErrNotFound) {
			return nil, manifest.BaseMissing(err)
		}
		return data, err
	}
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

// History lists the versions of key, oldest first: every stored manifest
// (Versions) and the version latest holds, which may have none while it
// is the newest (published as latest only, docs/FORMAT.md). It returns
// latest too (nil when the database has none).
func History(ctx context.Context, s blob.Store, key string) ([]uint64, *manifest.Manifest, error) {
	seqs, err := Versions(ctx, s, key)
	if err != nil {
		return nil, nil, err
	}
	latest, err := Latest(ctx, s, key)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return seqs, nil, nil
	case err != nil:
		return nil, nil, err
	}
	i := sort.Search(len(seqs), func(i int) bool { return seqs[i] >= latest.Seq })
	if i == len(seqs) || seqs[i] != latest.Seq {
		seqs = slices.Insert(seqs, i, latest.Seq)
	}
	return seqs, latest, nil
}

// Version fetches and verifies one stored manifest, resolved against its
// base when it is a delta (one more GET).
func Version(ctx context.Context, s blob.Store, key string, seq uint64) (*manifest.Manifest, error) {
	m, _, err := VersionDelta(ctx, s, key, seq)
	return m, err
}

// VersionDelta is Version that also returns the delta stored (nil for a
// full manifest), which names its base.
func VersionDelta(ctx context.Context, s blob.Store, key string, seq uint64) (*manifest.Manifest, *manifest.Delta, error) {
	return versionDelta(ctx, s, key, seq, BaseFetcher(ctx, s, key))
}

func versionDelta(ctx context.Context, s blob.Store, key string, seq uint64, fetch func(uint64) ([]byte, error)) (*manifest.Manifest, *manifest.Delta, error) {
	data, err := s.Get(ctx, names.ManifestKey(key, seq))
	if errors.Is(err, blob.ErrNotFound) {
		// A version published as latest only (docs/FORMAT.md, "History
		// objects") is one of the history while it is the latest.
		m, d, lerr := LatestDelta(ctx, s, key)
		if lerr == nil && m.Seq == seq {
			return m, d, nil
		}
		msg := fmt.Sprintf("no version %d of %s in %s", seq, key, s)
		if errors.Is(lerr, manifest.ErrCorrupt) {
			// It may be the latest, which cannot be read: say why.
			msg += fmt.Sprintf(" (its latest object does not decode: %v)", lerr)
		}
		return nil, nil, notFound(msg)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fetch manifest %d of %s: %w", seq, key, err)
	}
	m, d, err := manifest.Resolve(data, fetch)
	if err != nil {
		return nil, d, fmt.Errorf("manifest %d of %s: %w", seq, key, err)
	}
	if m.Seq != seq {
		return nil, d, fmt.Errorf("manifest %d of %s: %w: holds version %d", seq, key, manifest.ErrCorrupt, m.Seq)
	}
	if err := checkName(m, key); err != nil {
		return nil, d, fmt.Errorf("manifest %d of %s: %w", seq, key, err)
	}
	return m, d, nil
}

// checkName refuses a manifest stored under key that describes another
// database (its name's key is not key).
func checkName(m *manifest.Manifest, key string) error {
	if k := names.Key(m.Name); k != key {
		return fmt.Errorf("%w: it is the manifest of database %q (key %s), not of key %s", manifest.ErrCorrupt, m.Name, k, key)
	}
	return nil
}

// atLinear is how many of the newest versions At examines one by one
// before it searches in doubling steps.
const atLinear = 8

// At returns the newest version (the largest seq) committed at or before
// t, by the commit time its manifest records. Sequence numbers do not
// bound commit times (after a clock step back, or on a host whose clock is
// behind the previous writer's, versions are numbered above their commit
// times), so versions are searched by commit time: the newest atLinear one
// by one, then backwards in doubling steps, then by bisection between the
// last version found after t and the first at or before it. That costs
// about 2·log2(versions after t) GETs, plus one per distinct base of the
// delta manifests read, and is exact when commit times
// increase with seq; where they do not (around a clock step back), the
// version returned was still committed at or before t, but a newer one
// may have been too (docs/FORMAT.md).
//
// A version listed but gone when read, or whose base is (a copier
// renumbering a version removes the object it put under the old number; a
// GC removes old versions, deltas with their bases) makes the search
// start again from a new listing, a few times.
func At(ctx context.Context, s blob.Store, key string, t time.Time) (*manifest.Manifest, error) {
	for try := 1; ; try++ {
		m, err := at(ctx, s, key, t)
		var v *vanishedError
		if !errors.As(err, &v) {
			return m, err
		}
		if try >= atTries {
			return nil, fmt.Errorf("versions of %s keep disappearing during the search: %w", key, v.err)
		}
	}
}

// atTries bounds the searches of At when listed versions disappear.
const atTries = 3

// vanishedError is a listed version that was gone when read.
type vanishedError struct{ err error }

func (e *vanishedError) Error() string { return e.err.Error() }
func (e *vanishedError) Unwrap() error { return e.err }

func at(ctx context.Context, s blob.Store, key string, t time.Time) (*manifest.Manifest, error) {
	seqs, latest, err := History(ctx, s, key)
	if err != nil {
		return nil, err
	}
	got := map[int]*manifest.Manifest{}
	if latest != nil && len(seqs) > 0 && seqs[len(seqs)-1] == latest.Seq {
		got[len(seqs)-1] = latest // read already
	}
	// Deltas probed in one search mostly share a base: fetch each once.
	bases := map[uint64][]byte{}
	fetch := func(seq uint64) ([]byte, error) {
		if b, ok := bases[seq]; ok {
			return b, nil
		}
		b, err := BaseFetcher(ctx, s, key)(seq)
		if err == nil {
			bases[seq] = b
		}
		return b, err
	}
	before := func(i int) (bool, error) {
		if m := got[i]; m != nil {
			return !m.CommitTime.After(t), nil
		}
		m, _, err := versionDelta(ctx, s, key, seqs[i], fetch)
		if errors.Is(err, blob.ErrNotFound) || errors.Is(err, manifest.ErrBaseMissing) {
			return false, &vanishedError{err}
		}
		if err != nil {
			return false, err
		}
		got[i] = m
		return !m.CommitTime.After(t), nil
	}
	// Version lo was committed at or before t and version hi after it
	// (-1 and len(seqs) stand for none).
	lo, hi := -1, len(seqs)
	for i, step := len(seqs)-1, 1; i >= 0; i -= step {
		ok, err := before(i)
		if err != nil {
			return nil, err
		}
		if ok {
			lo = i
			break
		}
		hi = i
		if len(seqs)-i >= atLinear {
			step *= 2
		}
		if i > 0 && i-step < 0 {
			step = i // look at the oldest version before giving up
		}
	}
	if lo < 0 {
		return nil, notFound(fmt.Sprintf("no version of %s committed at or before %s", key, t.Format(time.RFC3339Nano)))
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := before(mid)
		if err != nil {
			return nil, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return got[lo], nil
}

// Chunk fetches and verifies chunk i of m: its chunk object, or its
// record in a pack with one ranged GET.
func Chunk(ctx context.Context, s blob.Store, m *manifest.Manifest, i int) ([]byte, error) {
	if data, ok := localChunk(m, i); ok {
		return data, nil
	}
	h := m.Chunks[i]
	if l, ok := m.Located(h); ok {
		u := &fetchUnit{key: names.PackKey(l.Pack.String()), packed: true, off: int64(l.Offset), n: int64(l.Length),
			recs: []unitRecord{{hash: h, loc: l, indices: []int{i}}}}
		obj, err := u.fetch(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("chunk %d (%s): %w", i, h, err)
		}
		return u.record(obj, u.recs[0], m)
	}
	obj, err := s.Get(ctx, names.ChunkKey(h.String()))
	if err != nil {
		return nil, fmt.Errorf("fetch chunk %d (%s): %w", i, h, err)
	}
	return chunkFromObject(obj, m, i)
}

// Write rebuilds the database described by m into w, verifying every
// chunk. With parallel > 1 it fetches that many objects or pack ranges
// at once (docs/FORMAT.md: a pack's records that m needs are read in as
// few ranged GETs as their layout allows); with 1, it writes the chunks
// in file order (w may rely on it), fetching a pack range once while it
// stays among the last few used.
func Write(ctx context.Context, s blob.Store, m *manifest.Manifest, w io.WriterAt, parallel int) error {
	if parallel <= 0 {
		parallel = 8
	}
	if parallel == 1 {
		return eachChunk(ctx, s, m, func(i int, data []byte) error {
			_, err := w.WriteAt(data, int64(i)*int64(m.ChunkSize))
			return err
		})
	}
	return writeParallel(ctx, s, m, w, parallel)
}

// notFoundError is a not-found error whose message is complete by itself;
// errors.Is(err, blob.ErrNotFound) holds for it.
type notFoundError string

func notFound(msg string) error { return notFoundError(msg) }

func (e notFoundError) Error() string { return string(e) }
func (e notFoundError) Is(target error) bool {
	return target == blob.ErrNotFound || target == fs.ErrNotExist
}
