package gc

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// hashRecordSize is a reference record: one chunk hash.
const hashRecordSize = manifest.HashSize

// dbObjects is what the listing shows of one database.
type dbObjects struct {
	key      string
	latest   *blob.ObjectInfo
	versions []version
}

type version struct {
	seq  uint64
	info blob.ObjectInfo
}

// databases walks dbs/, and for each database applies the retention
// policy (deleting the manifests it does not keep) and spills the chunk
// references of the kept ones.
func (r *run) databases(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan *dbObjects)
	var wg sync.WaitGroup
	for range max(1, r.opts.Parallel/4) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range work {
				if err := r.database(ctx, g); err != nil {
					cancel(err)
				}
			}
		}()
	}
	seed := maphash.MakeSeed()
	done := map[uint64]bool{} // databases already handed out (8 bytes each)
	var cur *dbObjects
	send := func() error {
		if cur == nil {
			return nil
		}
		select {
		case work <- cur:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		cur = nil
		return nil
	}
	err := r.s.Walk(ctx, "dbs/", func(page []blob.ObjectInfo) error {
		r.listPages.Add(1)
		for _, o := range page {
			db, rest, ok := dbKeyOf(o.Key)
			if !ok {
				continue
			}
			if cur == nil || cur.key != db {
				if err := send(); err != nil {
					return err
				}
				h := maphash.String(seed, db)
				if done[h] {
					// A store that lists a database's objects apart
					// would make retention decide on a partial list.
					return fmt.Errorf("gc: %s listed the objects of database %s non-contiguously; refusing to collect", r.s, db)
				}
				done[h] = true
				cur = &dbObjects{key: db}
			}
			switch {
			case rest == "latest":
				info := o
				cur.latest = &info
			case len(rest) > len("manifests/") && rest[:len("manifests/")] == "manifests/":
				seq, err := names.ParseManifestKey(o.Key)
				if err != nil {
					continue
				}
				cur.versions = append(cur.versions, version{seq, o})
			}
		}
		return nil
	})
	if err == nil {
		err = send()
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		// A worker's failure (or the caller's cancellation) stopped
		// the walk: report why, not the walk's "context canceled".
		err = context.Cause(ctx)
	}
	if err != nil {
		return fmt.Errorf("gc: databases: %w", err)
	}
	return r.refs.finish()
}

// database applies the policy to one database and spills the references
// of the versions kept.
func (r *run) database(ctx context.Context, g *dbObjects) error {
	slices.SortFunc(g.versions, func(a, b version) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	refs := map[manifest.Hash]struct{}{}
	var latestSeq uint64
	var latestBytes int64
	// latestInline: latest carries chunks inline. Its history object (the
	// same version, written later: an idle database's history interval
	// ended, or a flush) references them as chunk objects: read it too.
	latestInline := false
	bases := map[uint64]bool{} // bases of the deltas kept
	if g.latest != nil {
		r.gets.Add(1)
		m, d, err := restore.LatestDelta(ctx, r.s, g.key)
		if d != nil {
			bases[d.BaseSeq] = true
		}
		switch {
		case err == nil:
			latestSeq = m.Seq
			latestInline = len(m.Inline) > 0
			addRefs(refs, m)
			latestBytes = g.latest.Size
		case errors.Is(err, blob.ErrNotFound):
		case errors.Is(err, manifest.ErrCorrupt):
			r.unreadable(g.key, "latest", err)
		default:
			return err
		}
	}
	vs := make([]retention.Version, len(g.versions))
	for i, v := range g.versions {
		vs[i] = retention.Version{Seq: v.seq, Uploaded: v.info.ModTime}
	}
	why := retention.Select(r.opts.PolicyFor(g.key), vs, latestSeq, r.t0)
	// Newest first, so that the bases of kept deltas (always older than
	// them) are known to be kept when reached.
	var drop []string
	var kept, keptBytes, dropBytes int64
	for i := len(g.versions) - 1; i >= 0; i-- {
		v := g.versions[i]
		if why[i] == "" && !bases[v.seq] {
			drop = append(drop, v.info.Key)
			dropBytes += v.info.Size
			continue
		}
		kept++
		keptBytes += v.info.Size
		if v.seq == latestSeq && !latestInline {
			continue // its references came with latest
		}
		r.gets.Add(1)
		m, d, err := restore.VersionDelta(ctx, r.s, g.key, v.seq)
		if d != nil {
			bases[d.BaseSeq] = true
		}
		switch {
		case err == nil:
			addRefs(refs, m)
		case errors.Is(err, blob.ErrNotFound):
			// Deleted since the listing (another collection, or a
			// copier renumbering its upload).
		case errors.Is(err, manifest.ErrCorrupt):
			r.unreadable(g.key, fmt.Sprint(v.seq), err)
		default:
			return err
		}
	}
	// drop is newest first: a dropped delta goes before its dropped base.
	if len(drop) > 0 && !r.opts.DryRun {
		r.deletes.Add(int64((len(drop) + 999) / 1000))
		if err := r.s.Delete(ctx, drop...); err != nil {
			return fmt.Errorf("delete expired manifests of %s: %w", g.key, err)
		}
	}
	recs := make([][]byte, 0, len(refs))
	for h := range refs {
		recs = append(recs, h[:])
	}
	if err := r.refs.add(recs...); err != nil {
		return err
	}
	r.mu.Lock()
	r.sum.Databases++
	r.sum.ManifestsKept += kept
	r.sum.ManifestBytesKept += keptBytes + latestBytes
	r.sum.ManifestsDeleted += int64(len(drop))
	r.sum.ManifestBytesDeleted += dropBytes
	n := r.sum.Databases
	r.mu.Unlock()
	if n%100 == 0 {
		r.progress()
	}
	return nil
}

// addRefs adds the stored objects m references: the chunk objects of its
// chunks, or for a chunk it places in a pack, the pack; not chunk 0
// (inline), all-zero chunks (never stored) nor the chunks its object
// carries inline (a latest object's: they need no chunk object).
func addRefs(refs map[manifest.Hash]struct{}, m *manifest.Manifest) {
	for i, h := range m.Chunks {
		if i == 0 || h == manifest.ZeroChunkHash(manifest.ChunkLen(i, m.Length, m.ChunkSize)) || m.Inline[h] != nil {
			continue
		}
		if l, ok := m.Located(h); ok {
			refs[l.Pack] = struct{}{}
			continue
		}
		refs[h] = struct{}{}
	}
}

func (r *run) unreadable(key, which string, err error) {
	r.log.Warn("gc: unreadable manifest kept", "db", key, "version", which, "err", err)
	r.mu.Lock()
	r.sum.ManifestsUnreadable++
	r.mu.Unlock()
}
