package copier

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// Updating a database's "latest" object: conditional writes that never
// move it backwards, with the version of this process's last write
// predicted so that the next update is one request.

// latestGuess is what a copier knows about a "latest" object it wrote.
type latestGuess struct {
	seq     uint64
	version string // predicted version after our write; "" when unknown
}

// Version schemes: how a store derives an object's version (ETag) from its
// content, learned per target from GetVersioned answers. Predicting the
// version of our own write lets the next update of "latest" be a single
// conditional PUT instead of GET + PUT; a wrong prediction only costs the
// GET it would have cost anyway.
const (
	schemeUnknown int32 = iota
	schemeNone
	schemeMD5Quoted // S3: "hex(md5)" for single-part, unencrypted objects
	schemeMD5
	schemeSHA256 // the local-directory store
)

func versionFor(scheme int32, data []byte) string {
	switch scheme {
	case schemeMD5Quoted:
		sum := md5.Sum(data)
		return `"` + hex.EncodeToString(sum[:]) + `"`
	case schemeMD5:
		sum := md5.Sum(data)
		return hex.EncodeToString(sum[:])
	case schemeSHA256:
		sum := sha256.Sum256(data)
		return hex.EncodeToString(sum[:])
	}
	return ""
}

func detectScheme(data []byte, version string) int32 {
	for _, s := range []int32{schemeMD5Quoted, schemeMD5, schemeSHA256} {
		if versionFor(s, data) == version {
			return s
		}
	}
	return schemeNone
}

// updateLatest replaces the "latest" object of target ti unless it already
// holds a version numbered at least as high. Every write is conditional on
// the version read (or predicted from this process's last write), so
// racing copiers never move it backwards. When the stored version is
// numbered at or above m but m is a later state of the database (clock
// skew), it is returned, for m to be renumbered after it.
func (c *Copier) updateLatest(ctx context.Context, ti int, t blob.Store, at *attempt, key string, m *manifest.Manifest, enc []byte) (ahead *manifest.Manifest, err error) {
	st := at.st
	lk := names.LatestKey(key)
	if len(st.latest) != len(c.opts.Targets) {
		st.latest = make([]latestGuess, len(c.opts.Targets))
	}
	remember := func() {
		st.latest[ti] = latestGuess{seq: m.Seq, version: versionFor(c.schemes[ti].Load(), enc)}
	}
	enforced, err := c.conditionalWrites(ctx, at, ti, t)
	if err != nil {
		return nil, err
	}
	if g := st.latest[ti]; enforced && g.version != "" && g.seq < m.Seq {
		err := c.do(ctx, at, func(ctx context.Context) error { return t.PutIf(ctx, lk, enc, g.version) })
		if err == nil {
			remember()
			return nil, nil
		}
		if !errors.Is(err, blob.ErrPrecondition) {
			return nil, fmt.Errorf("update latest manifest in %s: %w", t, err)
		}
		// Someone else wrote it (or the prediction was wrong): read it.
	}
	st.latest[ti] = latestGuess{}
	for attempt := 0; ; attempt++ {
		var cur []byte
		var ver string
		err := c.do(ctx, at, func(ctx context.Context) (err error) {
			cur, ver, err = t.GetVersioned(ctx, lk)
			return err
		})
		switch {
		case errors.Is(err, blob.ErrNotFound):
			ver = ""
		case err != nil:
			return nil, fmt.Errorf("read latest manifest in %s: %w", t, err)
		default:
			if s := detectScheme(cur, ver); s != c.schemes[ti].Load() {
				c.schemes[ti].Store(s)
			}
			old, _, derr := manifest.Resolve(cur, func(seq uint64) (base []byte, err error) {
				err = c.do(ctx, at, func(ctx context.Context) (err error) {
					base, err = t.Get(ctx, names.ManifestKey(key, seq))
					if errors.Is(err, blob.ErrNotFound) {
						err = manifest.BaseMissing(err)
					}
					return err
				})
				return base, err
			})
			if derr != nil {
				// Damage, or a format this build does not read: never
				// replace what cannot be compared.
				return nil, fmt.Errorf("latest manifest in %s does not decode; not overwriting it: %w", t, derr)
			}
			if old.Seq >= m.Seq {
				st.latest[ti] = latestGuess{seq: old.Seq, version: ver}
				switch {
				case spool.SameState(old, m):
					// Already there (another copier).
				case spool.Follows(m, old):
					return old, nil // numbered by a clock that is behind
				case c.opts.TakeOver:
					c.log.Warn("taking over the replica name: making this database's version latest after a version that is not an earlier state of it",
						"key", key, "seq", m.Seq, "stored_seq", old.Seq, "target", t.String())
					return old, nil
				default:
					// A newer state, or another writer's: our manifest
					// stays reachable through manifests/, and the
					// upload fails (status, flush) until a version of
					// this database becomes latest.
					return nil, c.supersededBy(key, m, old, t.String())
				}
				return nil, nil
			}
			if spool.Follows(old, m) {
				c.log.Warn("replacing the store's latest by a version with an earlier change counter: the database was replaced by an older copy or recreated, or another host writes this replica name",
					"key", key, "seq", m.Seq, "stored_seq", old.Seq, "target", t.String())
			}
		}
		err = c.do(ctx, at, func(ctx context.Context) error { return t.PutIf(ctx, lk, enc, ver) })
		if err == nil {
			remember()
			return nil, nil
		}
		if !errors.Is(err, blob.ErrPrecondition) || attempt >= 10 {
			return nil, fmt.Errorf("update latest manifest in %s: %w", t, err)
		}
	}
}
