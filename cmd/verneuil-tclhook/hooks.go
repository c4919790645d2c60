//go:build cgo && verneuil_extern

package main

/*
void vt_iosim_suspend(void);
void vt_iosim_resume(void);
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

type hookOptions struct {
	check           bool   // VERNEUIL_CHECK_EVERY_COMMIT=1
	faultsInCapture bool   // VERNEUIL_TCL_FAULTS_IN_CAPTURE=1
	maxCheckBytes   int64  // VERNEUIL_CHECK_MAX_BYTES
	stateDir        string // VERNEUIL_TCL_STATE
}

// hooks sits between the shim and the tracker.
//
// Fault injection: the testfixture's SQLite simulates I/O errors inside the
// unix VFS (sqlite3_io_error_pending, counted down by every read). The
// tracker reads the database through that same unix file at commit, so an
// error a test aims at one of SQLite's reads could fire in the tracker's
// read instead: replication would log it and rescan later (it never fails
// the transaction, by design), and the test would see an error "hit" that
// SQL did not report (ioerr.test's "*.3" cases). Those reads do not exist
// for the application, so the simulation is suspended while the tracker
// captures (hook.c), unless VERNEUIL_TCL_FAULTS_IN_CAPTURE=1. The Go unit
// tests cover the tracker's behaviour under read errors.
//
// The per-commit check (check.go) runs after the tracker's capture, still
// inside the shim's callback, i.e. while SHARED is held.
type hooks struct {
	trk  *tracker.Manager
	opts hookOptions
	log  *slog.Logger

	simMu sync.Mutex // serialises captures: the simulation switch is global

	mu    sync.Mutex
	paths map[uint64]string

	chk *checker // nil unless opts.check
}

// startHooked starts replication with replicator.StartWithHooks, installing
// the hooks layer in front of the tracker. The VFS is the default.
func startHooked(cfg *config.Config, opts hookOptions) error {
	cfg.MakeDefault = true
	log := replicator.NewLogger(cfg)
	_, err := replicator.StartWithHooks(context.Background(), cfg, func(trk *tracker.Manager, stores []blob.Store) (sqlite3vfs.Hooks, error) {
		h := &hooks{trk: trk, opts: opts, log: log, paths: map[uint64]string{}}
		if opts.check {
			var err error
			if h.chk, err = newChecker(trk, stores[0], log, opts); err != nil {
				return nil, err
			}
		}
		return h, nil
	})
	return err
}

func (h *hooks) Open(path string) uint64 {
	id := h.trk.Open(path)
	if id != 0 {
		h.mu.Lock()
		h.paths[id] = path
		h.mu.Unlock()
	}
	return id
}

func (h *hooks) Release(id uint64) {
	h.mu.Lock()
	path, ok := h.paths[id]
	delete(h.paths, id)
	last := ok
	for _, p := range h.paths {
		if p == path {
			last = false
			break
		}
	}
	h.mu.Unlock()
	h.trk.Release(id)
	if last && h.chk != nil {
		// No connection of the process has the database open any more:
		// the next test file (they reuse test.db) starts its count afresh.
		h.chk.forget(path)
	}
}

// DBID and WALQueued let the VFS queue WAL commits (internal/tracker/
// walqueue.go): the checker sees them at the capture or build that takes
// them.
func (h *hooks) DBID(id uint64) uint64 { return h.trk.DBID(id) }

func (h *hooks) WALQueued(id uint64, drain bool) { h.trk.WALQueued(id, drain) }

func (h *hooks) Pragma(id uint64, src tracker.Source, name, arg string) (string, error) {
	return h.trk.Pragma(id, src, name, arg)
}

func (h *hooks) Capture(id uint64, src tracker.Source, ev tracker.Event) bool {
	h.simMu.Lock()
	defer h.simMu.Unlock()
	suspended := false
	if !h.opts.faultsInCapture {
		C.vt_iosim_suspend()
		suspended = true
	}
	want := h.trk.Capture(id, src, ev)
	if h.chk != nil && (ev.Kind == tracker.Commit || ev.Kind == tracker.WALCommit || ev.Kind == tracker.WALHeapCommit) {
		if !suspended {
			C.vt_iosim_suspend()
			suspended = true
		}
		h.mu.Lock()
		path := h.paths[id]
		h.mu.Unlock()
		h.chk.afterCommit(path, src, ev, want)
	}
	if suspended {
		C.vt_iosim_resume()
	}
	return want
}

// statsFile opens DIR/NAME.PID for the per-process results.
func statsFile(dir, name string, flag int) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s.%d", name, os.Getpid())), flag, 0o644)
}
