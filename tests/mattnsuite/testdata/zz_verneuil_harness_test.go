// This file is copied by tests/mattnsuite (the mattn-suite driver of the
// verneuil repository) into a writable copy of github.com/mattn/go-sqlite3,
// next to the driver's own tests, which it does not change. It is an
// external test package (sqlite3_test) so that it may import verneuil,
// which imports the driver: the in-package tests and verneuil's VFS then
// share one SQLite, the driver's amalgamation.
//
// Environment (set by the driver; with VERNEUIL_MATTN_MODE unset the file
// does nothing and the suite runs as usual):
//
//	VERNEUIL_MATTN_MODE    "plain" (SQLite's unix VFS) or "verneuil"
//	                       (verneuil.Start with VERNEUIL_CONFIG, which must
//	                       say "make_default": true)
//	VERNEUIL_MATTN_KEEP    directory on TMPDIR's file system: every file
//	                       created under TMPDIR during the suite, other than
//	                       journals, -wal and -shm files, is hard-linked to
//	                       the same relative path there, so that its last
//	                       content outlives the test that removes it
//	VERNEUIL_MATTN_REPORT  file the harness writes its report to (JSON)
//
// Both modes run the same binary, the same probe and the same watcher: the
// only difference between the two passes is SQLite's default VFS.
package sqlite3_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil"
)

// harnessReport is what the harness writes to VERNEUIL_MATTN_REPORT.
type harnessReport struct {
	Mode string `json:"mode"`
	// Probe is what PRAGMA verneuil_flush returned on a database opened
	// without vfs=: "ok" through verneuil, "" (no row) through unix.
	Probe      string   `json:"probe"`
	ProbeError string   `json:"probe_error,omitempty"`
	ProbePath  string   `json:"probe_path,omitempty"`
	Kept       int      `json:"kept"`
	WatchDirs  int      `json:"watch_dirs"`
	WatchError []string `json:"watch_errors,omitempty"`
	StartError string   `json:"start_error,omitempty"`
	FlushError string   `json:"flush_error,omitempty"`
	CloseError string   `json:"close_error,omitempty"`
	ExitCode   int      `json:"exit_code"`
}

func TestMain(m *testing.M) {
	mode := os.Getenv("VERNEUIL_MATTN_MODE")
	if mode == "" {
		os.Exit(m.Run())
	}
	rep := harnessReport{Mode: mode, ExitCode: -1}
	code := runHarness(m, mode, &rep)
	rep.ExitCode = code
	if path := os.Getenv("VERNEUIL_MATTN_REPORT"); path != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(path, append(data, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "verneuil-harness: report:", err)
			code = 3
		}
	}
	os.Exit(code)
}

func runHarness(m *testing.M, mode string, rep *harnessReport) int {
	ctx := context.Background()
	var r *verneuil.Replicator
	switch mode {
	case "plain":
	case "verneuil":
		cfg, err := verneuil.ConfigFromEnv()
		if err == nil {
			r, err = verneuil.Start(ctx, cfg)
		}
		if err != nil {
			rep.StartError = err.Error()
			fmt.Fprintln(os.Stderr, "verneuil-harness:", err)
			return 3
		}
	default:
		rep.StartError = fmt.Sprintf("VERNEUIL_MATTN_MODE=%q: want plain or verneuil", mode)
		fmt.Fprintln(os.Stderr, "verneuil-harness:", rep.StartError)
		return 3
	}

	rep.ProbePath, rep.Probe, rep.ProbeError = probeDefaultVFS()

	var w *keepWatcher
	if keep := os.Getenv("VERNEUIL_MATTN_KEEP"); keep != "" {
		var err error
		w, err = startKeepWatcher(os.TempDir(), keep)
		if err != nil {
			rep.WatchError = append(rep.WatchError, err.Error())
			fmt.Fprintln(os.Stderr, "verneuil-harness:", err)
			return 3
		}
	}

	code := m.Run()

	if w != nil {
		rep.Kept, rep.WatchDirs, rep.WatchError = w.stop()
	}
	if r != nil {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		if err := r.Flush(fctx); err != nil {
			rep.FlushError = err.Error()
		}
		if err := r.Close(fctx); err != nil {
			rep.CloseError = err.Error()
		}
		cancel()
	}
	return code
}

// probeDefaultVFS writes a small database under TMPDIR opened without a
// vfs= parameter and asks it PRAGMA verneuil_flush: "ok" shows that the
// default VFS is verneuil and that the write reached the target; through
// unix the pragma is unknown and returns no row. The database stays, for
// the driver to compare with its replica.
func probeDefaultVFS() (path, answer, problem string) {
	dir, err := os.MkdirTemp("", "verneuil-harness-probe-")
	if err != nil {
		return "", "", err.Error()
	}
	path = filepath.Join(dir, "probe.db")
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		return path, "", err.Error()
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE probe(id INTEGER PRIMARY KEY, v TEXT)",
		"INSERT INTO probe(v) VALUES ('written by the mattn-suite harness')",
	} {
		if _, err := db.Exec(q); err != nil {
			return path, "", fmt.Sprintf("%s: %v", q, err)
		}
	}
	err = db.QueryRow("PRAGMA verneuil_flush").Scan(&answer)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return path, answer, "PRAGMA verneuil_flush: " + err.Error()
	}
	return path, answer, ""
}

// keepWatcher hard-links every file created under root (recursively) to
// the same relative path under keep.
type keepWatcher struct {
	root, keep string
	fd         int
	dirs       map[int32]string // watch descriptor → directory relative to root
	kept       int
	problems   []string
	stopping   atomic.Bool
	done       chan struct{}
}

const keepWatchMask = syscall.IN_CREATE | syscall.IN_MOVED_TO | syscall.IN_ONLYDIR

func startKeepWatcher(root, keep string) (*keepWatcher, error) {
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("keep watcher: %w", err)
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("keep watcher: inotify_init1: %w", err)
	}
	w := &keepWatcher{root: root, keep: keep, fd: fd, dirs: map[int32]string{}, done: make(chan struct{})}
	// What root holds already (the probe) is not the suite's: watch it
	// without handling its entries.
	if err := w.addDir(".", false); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	go w.loop()
	return w, nil
}

// addDir watches root/rel, then, with existing, handles what it already
// holds (created before the watch was in place).
func (w *keepWatcher) addDir(rel string, existing bool) error {
	dir := filepath.Join(w.root, rel)
	wd, err := syscall.InotifyAddWatch(w.fd, dir, keepWatchMask)
	if err != nil {
		return fmt.Errorf("keep watcher: watch %s: %w", dir, err)
	}
	w.dirs[int32(wd)] = rel
	if !existing {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // removed already
	}
	for _, e := range entries {
		w.handle(filepath.Join(rel, e.Name()), e.IsDir())
	}
	return nil
}

func (w *keepWatcher) handle(rel string, isDir bool) {
	if isDir {
		if err := w.addDir(rel, true); err != nil && !errors.Is(err, syscall.ENOENT) {
			w.problems = append(w.problems, err.Error())
		}
		return
	}
	name := filepath.Base(rel)
	if strings.HasPrefix(name, "verneuil-harness-wake-") {
		return
	}
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if strings.HasSuffix(name, suffix) {
			return
		}
	}
	if strings.Contains(name, "-mj") {
		return // a super-journal
	}
	dst := filepath.Join(w.keep, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		w.problems = append(w.problems, err.Error())
		return
	}
	err := os.Link(filepath.Join(w.root, rel), dst)
	if errors.Is(err, os.ErrExist) {
		// A file created again under a name the suite used before: the
		// newer one is the database its replica's name now refers to.
		if err = os.Remove(dst); err == nil {
			err = os.Link(filepath.Join(w.root, rel), dst)
		}
	}
	switch {
	case err == nil:
		w.kept++
	case errors.Is(err, os.ErrNotExist):
	default:
		w.problems = append(w.problems, err.Error())
	}
}

// loop reads the events in a blocking read on a thread of its own: a
// file that a quick test creates and removes is linked only if the
// watcher runs in between, which waiting in the runtime's poller for a
// free P makes less likely on a busy machine.
func (w *keepWatcher) loop() {
	runtime.LockOSThread()
	defer close(w.done)
	defer syscall.Close(w.fd)
	buf := make([]byte, 64<<10)
	for !w.stopping.Load() {
		n, err := syscall.Read(w.fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			w.problems = append(w.problems, "keep watcher: read: "+err.Error())
			return
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := strings.TrimRight(string(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+nameLen]), "\x00")
			off += syscall.SizeofInotifyEvent + nameLen
			if mask&syscall.IN_Q_OVERFLOW != 0 {
				w.problems = append(w.problems, "keep watcher: inotify queue overflow (some files were not kept)")
				continue
			}
			dir, ok := w.dirs[wd]
			if !ok || name == "" {
				continue
			}
			if dir == "." && filepath.Join(w.root, name) == w.keep {
				continue
			}
			w.handle(filepath.Join(dir, name), mask&syscall.IN_ISDIR != 0)
		}
	}
}

// stop ends the watcher and returns how many files it kept, how many
// directories it watched and its problems.
func (w *keepWatcher) stop() (kept, dirs int, problems []string) {
	w.stopping.Store(true)
	// An event wakes the blocking read up.
	wake, err := os.CreateTemp(w.root, "verneuil-harness-wake-")
	if err != nil {
		// The watcher goes on; what it found so far is lost.
		return 0, 0, []string{"keep watcher: stop: " + err.Error()}
	}
	wake.Close()
	<-w.done
	os.Remove(wake.Name())
	return w.kept, len(w.dirs), w.problems
}
