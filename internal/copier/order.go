package copier

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// Version numbers come from clocks (docs/FORMAT.md), so a database moved to
// a host whose clock is behind, or a clock stepped back, can number a new
// state at or below one already published. A version is therefore
// compared with what the store (or the upload record) holds by content
// first: the same state is already uploaded whatever its number; a later
// state of the same file (spool.Follows: its change counter is ahead) is renumbered
// after the stored one and published, with a warning; anything else is an
// older state or another writer's: latest is left alone and the upload
// fails with ErrSuperseded (status, flush), unless Options.TakeOver.

// ErrSuperseded means a version could not be made the store's latest: the
// latest there is numbered at or above it and is not an earlier state of
// the database (a later state, another host's or a database recreated or
// restored from an older copy while its host's clock is behind). The
// version stays reachable under manifests/; the replica's latest does not
// reflect this database until one of its versions follows the latest.
var ErrSuperseded = errors.New("the store's latest holds a newer state of this replica name, or another writer's")

// stagedUploaded reports whether the staged manifest of d is known to be
// uploaded, comparing contents (for unreliable stamps).
func stagedUploaded(d *spool.Dir) bool {
	m, _, err := d.Manifest()
	if err != nil {
		return false
	}
	up, _, err := d.Uploaded()
	return err == nil && (m == nil || !spool.NeedsUpload(m, up))
}

// renumber returns m as version seq, after above (a newer-numbered version
// of an older state), and warns: the clock that numbered m is behind.
func (c *Copier) renumber(key string, m *manifest.Manifest, seq uint64, above *manifest.Manifest, where string) (*manifest.Manifest, []byte, error) {
	r := *m
	r.Seq = seq
	enc, err := r.Encode()
	if err != nil {
		return nil, nil, fmt.Errorf("renumber manifest %d as %d: %w", m.Seq, seq, err)
	}
	c.stats.resequenced.Add(1)
	c.log.Warn("clock skew: a new version is numbered at or below "+where+"; publishing it renumbered after it (check the clocks of the hosts writing this database)",
		"key", key, "seq", m.Seq, "renumbered", seq, "stored_seq", above.Seq,
		"commit_time", m.CommitTime, "stored_commit_time", above.CommitTime)
	if c.opts.OnResequence != nil {
		c.opts.OnResequence(key, seq)
	}
	return &r, enc, nil
}

// supersededBy counts that the staged manifest m is not published as the
// latest of target because latest there, newer, is numbered at or above m
// and is not an earlier state of the database, and returns the error
// (ErrSuperseded) that the upload fails with: recorded in the spool's
// last_error (status) and logged by the failure path, so the database
// never looks replicated while the replica shows another state.
func (c *Copier) supersededBy(key string, m, newer *manifest.Manifest, target string) error {
	c.stats.superseded.Add(1)
	return fmt.Errorf("%w: version %d (committed %s, change counter %d) not made latest in %s, which holds version %d (committed %s, change counter %d); "+
		"if this host is the database's only writer, check the clocks of the hosts that wrote this name (a version numbered above the latest fixes it); "+
		"otherwise give each host's database its own name (config \"names\"); version %d stays under manifests/",
		ErrSuperseded, m.Seq, m.CommitTime.UTC().Format(time.RFC3339Nano), changeCounter(m), target,
		newer.Seq, newer.CommitTime.UTC().Format(time.RFC3339Nano), changeCounter(newer), m.Seq)
}

// changeCounter returns the SQLite file change counter in m's header (0
// without one).
func changeCounter(m *manifest.Manifest) uint32 {
	if len(m.Chunk0) < 28 {
		return 0
	}
	return binary.BigEndian.Uint32(m.Chunk0[24:28])
}

// publishManifest puts m in every target and makes it their latest. When
// a target's latest holds a version numbered at or above m that m follows,
// m is renumbered after it and published again (the history object put
// under the old number, if any, is removed). It returns the manifest
// published.
func (c *Copier) publishManifest(ctx context.Context, d *spool.Dir, at *attempt, m *manifest.Manifest, enc []byte) (*manifest.Manifest, []byte, int, error) {
	// Whether m gets its history object (history.go), decided once:
	// every target then holds the same versions.
	due := c.wantHistory(at, time.Now())
	for round := 0; ; round++ {
		var ahead *manifest.Manifest
		put := 0
		// Inline chunks go in the latest objects only (inline.go).
		pub, err := c.publishable(ctx, at, due, m, enc)
		if err != nil {
			return nil, nil, 0, err
		}
		m, enc = pub.m, pub.enc
		wires, latests, hist := pub.wires, pub.latests, pub.hist
		for ti, t := range c.opts.Targets {
			wire, latest := wires[ti], pub.puts[ti]
			if hist {
				err := c.do(ctx, at, func(ctx context.Context) error {
					return t.Put(ctx, names.ManifestKey(d.Key, m.Seq), wire)
				})
				if err != nil {
					return nil, nil, 0, fmt.Errorf("upload manifest %d to %s: %w", m.Seq, t, err)
				}
				put = ti + 1
			}
			failpoint.Hit("upload-before-latest")
			var err error
			ahead, err = c.updateLatest(ctx, ti, t, at, d.Key, m, latest)
			if err != nil {
				return nil, nil, 0, err
			}
			if ahead != nil {
				break
			}
		}
		if ahead == nil {
			c.recordHistory(at.st, m.Seq, hist, time.Now())
			if !hist {
				return m, enc, c.publishedLatestOnly(at.st, m, pub.plainEnc, latests), nil
			}
			return m, enc, c.publishedWires(at.st, m, enc, wires), nil
		}
		if round >= 10 {
			return nil, nil, 0, fmt.Errorf("publish manifest %d: the latest version keeps moving ahead", m.Seq)
		}
		old := m.Seq
		if m, enc, err = c.renumber(d.Key, m, ahead.Seq+1, ahead, "the store's latest"); err != nil {
			return nil, nil, 0, err
		}
		for _, t := range c.opts.Targets[:put] {
			err := c.do(ctx, at, func(ctx context.Context) error {
				return t.Delete(ctx, names.ManifestKey(d.Key, old))
			})
			if err != nil {
				c.log.Warn("remove renumbered manifest", "key", d.Key, "seq", old, "target", t.String(), "err", err)
			}
		}
	}
}
