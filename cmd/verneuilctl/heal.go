package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// healer runs in the copier daemon: every scan interval it compares every
// spooled database file with its last capture and syncs (rescans and
// uploads, as verneuilctl sync does) those changed outside capture: writes
// of processes that bypass the VFS or of children forked without exec,
// which nothing else would capture until the next write through the VFS.
// Databases in WAL mode are compared through their WAL position and
// synced under a WAL read lock (walsync.go).
//
// One goroutine does the checks and the syncs in turn: a check opens and
// closes the database file, which must not happen while a connection of
// this process holds locks on it.
type healer struct {
	cfg      *config.Config
	log      *slog.Logger
	interval time.Duration
	// clock is time.Now (tests set it).
	clock func() time.Time

	// r replicates through the VFS in this process; started at the first
	// sync, closed by close.
	r *replicator.Replicator

	// clean caches the stamps of files found identical to their capture:
	// an unchanged stamp costs three stat(2) calls per pass.
	clean map[string]fileStamp
	// failing: databases whose sync failed at the last pass (logged at
	// error once, then at debug).
	failing map[string]bool

	syncs, syncErrors atomic.Int64

	mu     sync.Mutex
	states map[string]sourceState // by spool key, as of the last pass
}

func newHealer(cfg *config.Config, log *slog.Logger, interval time.Duration) *healer {
	return &healer{cfg: cfg, log: log, interval: interval, clock: time.Now,
		clean: map[string]fileStamp{}, failing: map[string]bool{},
		states: map[string]sourceState{}}
}

// run passes over the spool every interval until ctx is done.
func (h *healer) run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// close stops the replicator started for syncs.
func (h *healer) close(ctx context.Context) error {
	if h.r == nil {
		return nil
	}
	return h.r.Close(ctx)
}

// pass checks every spooled database once and syncs those changed outside
// capture.
func (h *healer) pass(ctx context.Context) {
	keys, err := spool.List(h.cfg.SpoolDir)
	if err != nil {
		h.log.Warn("check databases: list spool", "err", err)
		return
	}
	now := h.clock()
	states := make(map[string]sourceState, len(keys))
	for _, key := range keys {
		if ctx.Err() != nil {
			return
		}
		d, err := spool.Existing(h.cfg.SpoolDir, key)
		if err != nil {
			continue
		}
		info, err := d.Info()
		if err != nil || info.Path == "" {
			continue
		}
		st, err := h.check(d, info.Path, now)
		if err != nil {
			h.log.Debug("check database", "db", info.Path, "err", err)
			continue
		}
		if st.Outside {
			if err := h.sync(ctx, d, info.Path, st); err != nil {
				h.syncErrors.Add(1)
				level := slog.LevelError
				if h.failing[key] {
					level = slog.LevelDebug // already reported
				}
				h.failing[key] = true
				h.log.Log(ctx, level, "sync database changed outside capture (retried every scan interval)",
					"db", info.Path, "reason", st.Reason, "err", err)
			} else {
				h.syncs.Add(1)
				delete(h.failing, key)
				h.log.Info("synced database changed outside capture", "db", info.Path, "reason", st.Reason)
				st = sourceState{InSync: true, WAL: st.WAL}
			}
		}
		states[key] = st
	}
	for key := range h.clean {
		if _, ok := states[key]; !ok {
			delete(h.clean, key)
		}
	}
	for key := range h.failing {
		if _, ok := states[key]; !ok {
			delete(h.failing, key)
		}
	}
	h.mu.Lock()
	h.states = states
	h.mu.Unlock()
}

// check is checkSource, skipped for files unchanged since found in sync.
func (h *healer) check(d *spool.Dir, path string, now time.Time) (sourceState, error) {
	q, err := quickCheck(d, path)
	if err != nil || q.Missing {
		return q, err
	}
	if prev, ok := h.clean[d.Key]; ok && prev == q.stamp && !q.Marker {
		return sourceState{InSync: true, stamp: q.stamp}, nil
	}
	delete(h.clean, d.Key)
	st, err := checkSource(d, path, now)
	// A WAL database commits to its -wal: its file's stamp says nothing.
	if err == nil && st.InSync && !st.WAL && !st.Marker && stampSettled(st.stamp, now) {
		h.clean[d.Key] = st.stamp
	}
	return st, err
}

// stampSettled reports whether the stamp of a file checked at now will
// change with any later write. Whole-second times (file systems with
// coarse timestamps) do not change for a write in the same second as the
// check, so such a stamp is only trusted once the second of its ctime is
// over, with a second of margin for clocks read at different ticks; until
// then the file is checked again (its header and version xattr).
func stampSettled(st fileStamp, now time.Time) bool {
	if st.CTime%int64(time.Second) != 0 || st.MTime%int64(time.Second) != 0 {
		return true
	}
	return now.Sub(time.Unix(0, st.CTime)) >= 2*time.Second
}

// sync captures the database through the VFS (the tracker finds its
// identity changed and rescans it) and uploads it, then removes the rescan
// marker seen before the sync.
func (h *healer) sync(ctx context.Context, d *spool.Dir, path string, st sourceState) error {
	_, key, err := replicator.ReplicaName(h.cfg, path, "")
	if err != nil {
		return err
	}
	if key != d.Key {
		return fmt.Errorf("spool %s belongs to another configuration (this one names the database %s)", d.Key, key)
	}
	if h.r == nil {
		cfg := *h.cfg
		cfg.MakeDefault = false
		// The daemon's own copier scans the spool.
		cfg.ScanInterval = config.Duration(24 * time.Hour)
		if h.r, err = replicator.Start(ctx, &cfg); err != nil {
			h.r = nil
			return fmt.Errorf("start replication: %w", err)
		}
	}
	if err := captureThroughVFS(ctx, h.r, []string{path}); err != nil {
		return err
	}
	if err := h.r.FlushDB(ctx, path); err != nil {
		return err
	}
	if st.Marker {
		if err := os.Remove(filepath.Join(d.Path, spool.RescanMarker)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove rescan marker: %w", err)
		}
	}
	return nil
}

// snapshot returns the states of the last pass.
func (h *healer) snapshot() map[string]sourceState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.states
}
