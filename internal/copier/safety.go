package copier

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// condUnknown, condEnforced and condIgnored say whether a target enforces
// conditional writes, as its probe found.
const (
	condUnknown int32 = iota
	condEnforced
	condIgnored
	condUnprobed // the probe was refused (a policy on the probe's key, say)
)

// probePrefix holds the objects of the conditional-write probe; each is
// deleted right after the probe.
const probePrefix = "probes/conditional-write-"

// catch, deferred, turns a panic into an error in *err: it is logged with
// its stack and counted, and the host process lives on.
func (c *Copier) catch(where string, err *error) {
	p := recover()
	if p == nil {
		return
	}
	c.stats.panics.Add(1)
	c.log.Error("recovered a panic in the copier", "in", where, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	*err = fmt.Errorf("%s: panic: %v", where, p)
}

// safely runs fn, turning a panic into an error.
func (c *Copier) safely(where string, fn func() error) (err error) {
	defer c.catch(where, &err)
	return fn()
}

// keepRunning runs loop until it returns normally; a panic is logged and
// counted, and the loop restarts a second later unless ctx is done or the
// copier is closing.
func (c *Copier) keepRunning(ctx context.Context, where string, loop func(context.Context)) {
	for {
		err := c.safely(where, func() error { loop(ctx); return nil })
		if err == nil {
			return
		}
		select {
		case <-c.stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// conditionalWrites reports whether target ti enforces conditional writes,
// probing it the first time: a create-if-absent of a fresh key must work
// and a second one must fail. A store that accepts both (a proxy that
// strips If-None-Match and If-Match, a store without them) is reported
// loudly and in Stats; "latest" is then only updated after reading and
// comparing it, never on the strength of a condition.
func (c *Copier) conditionalWrites(ctx context.Context, at *attempt, ti int, t blob.Store) (bool, error) {
	if v := c.conds[ti].Load(); v != condUnknown {
		return v == condEnforced, nil
	}
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	if v := c.conds[ti].Load(); v != condUnknown {
		return v == condEnforced, nil
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	key := probePrefix + hex.EncodeToString(nonce[:])
	body := []byte("verneuil conditional write probe; safe to delete\n")
	err := c.do(ctx, at, func(ctx context.Context) error { return t.PutIf(ctx, key, body, "") })
	if errors.Is(err, blob.ErrPrecondition) {
		err = nil // a fresh key exists: the condition was checked
	} else if err == nil {
		err = c.do(ctx, at, func(ctx context.Context) error { return t.PutIf(ctx, key, body, "") })
	} else if errors.Is(err, blob.ErrPermanent) {
		// Not allowed to write the probe: do without it, never trusting
		// a condition (as for a store that ignores them), quietly.
		c.conds[ti].Store(condUnprobed)
		c.log.Warn("cannot probe whether the target enforces conditional writes; \"latest\" is updated by read, compare and write",
			"target", t.String(), "err", err)
		return false, nil
	} else {
		return false, fmt.Errorf("probe conditional writes in %s: %w", t, err)
	}
	if derr := c.do(ctx, at, func(ctx context.Context) error { return t.Delete(ctx, key) }); derr != nil {
		c.log.Warn("delete conditional-write probe", "target", t.String(), "key", key, "err", derr)
	}
	switch {
	case err == nil:
		c.conds[ti].Store(condIgnored)
		c.log.Error("target ignores conditional writes (If-None-Match/If-Match): a second create-if-absent of one key succeeded. "+
			"Replication continues, but \"latest\" is updated by read, compare and write, so copiers on several hosts "+
			"publishing one replica name can race; fix the store or the proxy in front of it", "target", t.String())
		return false, nil
	case errors.Is(err, blob.ErrPrecondition):
		c.conds[ti].Store(condEnforced)
		return true, nil
	default:
		return false, fmt.Errorf("probe conditional writes in %s: %w", t, err)
	}
}

// targetIDs identifies the configured targets for the spool's upload
// records (spool.Dir.UploadedTargets): a hash of each target's location,
// its description without the S3 endpoint, which says how the bucket is
// reached, not which (processes sharing a spool may reach one bucket
// through different endpoints).
func (c *Copier) targetIDs() []string {
	ids := make([]string, 0, len(c.opts.Targets))
	for _, t := range c.opts.Targets {
		loc := t.String()
		if i := strings.LastIndex(loc, " at "); strings.HasPrefix(loc, "s3://") && i >= 0 {
			loc = loc[:i] // URLs have no spaces: this is the endpoint
		}
		sum := sha256.Sum256([]byte(loc))
		ids = append(ids, hex.EncodeToString(sum[:8]))
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// recordCovers reports whether the upload record of d was written for (a
// superset of) the configured targets: only then are the chunks it lists
// known to be in every target.
func (c *Copier) recordCovers(d *spool.Dir) bool { return d.RecordCovers(c.targetIDs()) }

// declareTargets tells the spool package which targets this process
// uploads to, so that upload records for other targets are not trusted
// (by the tracker's rescans either). The description of a target opened
// late can change when it opens, hence a refresh at each upload.
func (c *Copier) declareTargets() { spool.SetUploadTargets(c.opts.SpoolDir, c.targetIDs()) }

// MarkForeignForRescan asks for a rescan of the database of spool d when
// the spool was uploaded to other targets (the configuration changed while
// the spool stayed), so that its first capture restages every chunk and
// these targets get a complete version. The record is left alone: another
// process sharing the spool may upload to those targets. A record that
// names no targets (written by older versions) is left to the upload,
// which checks its chunks in the targets. The tracker calls it when this
// process starts tracking the database, so a process start costs nothing
// per database of the spool root that it does not open.
func (c *Copier) MarkForeignForRescan(d *spool.Dir) error {
	have, err := d.UploadedTargets()
	if err != nil || have == nil || d.RecordCovers(c.targetIDs()) || d.RescanWanted() {
		return nil
	}
	c.log.Info("the targets changed since this database was uploaded: it will be rescanned and uploaded in full", "db", d.Key)
	if err := d.MarkRescan("targets changed"); err != nil {
		return fmt.Errorf("check upload record: %w", err)
	}
	return nil
}
