//go:build cgo && verneuil_extern

// Command verneuil-tclhook puts the replicating VFS into SQLite's TCL test
// harness (testfixture). It is a C archive, not a program:
//
//	go build -buildmode=c-archive -tags verneuil_extern \
//	    -o libverneuil_tclhook.a ./cmd/verneuil-tclhook
//
// linked into Debian's testfixture with
//
//	make testfixture OPTS=-DSQLITE_EXTRA_INIT=verneuil_extra_init \
//	    TLIBS="libverneuil_tclhook.a -lpthread -lm -lz"
//
// scripts/sqlite-tcl/run.sh does all of that and compares the failing tests
// with those of the plain testfixture (docs/TESTING-TCL.md).
//
// SQLite calls verneuil_extra_init (hook.c) at the end of every
// sqlite3_initialize. The first call starts replication with the
// configuration in VERNEUIL_CONFIG (required: the script points the spool
// and a file:// target at a scratch directory) and registers "verneuil" as
// the default VFS, and also under the name "unix" (see hook.c). Replication
// is started from the same parts, with the same configuration, as
// replicator.Start, with a layer between the shim and the tracker (hooks.go):
// it keeps the testfixture's fault injection away from replication's own
// reads, and runs the per-commit invariant check (check.go).
//
// Environment:
//
//	VERNEUIL_CONFIG              the configuration (inline JSON or @file); required
//	VERNEUIL_CHECK_EVERY_COMMIT  1: after every captured commit, flush and
//	                             compare the replica with the file (check.go),
//	                             or for a WAL commit with the state composed
//	                             from the file and the -wal (walref.go)
//	VERNEUIL_CHECK_MAX_BYTES     larger files are not compared (default 256 MiB)
//	VERNEUIL_TCL_FAULTS_IN_CAPTURE 1: let the I/O errors that tests inject
//	                             reach replication's reads too (hooks.go)
//	VERNEUIL_TCL_STATE           directory for per-process statistics and
//	                             check failures (stats.PID, failures.PID)
//	VERNEUIL_TCL_LOG             file that the library's log goes to instead of
//	                             stderr (some tests compare a child's stderr)
//	VERNEUIL_TCL_SHADOW_UNIX     0: do not register the copy named "unix"
//	VERNEUIL_TCL_LABEL           test file name, for the check's failure lines
//
// Without the verneuil_extern tag this package is empty: built normally it
// would link mattn's SQLite, which the testfixture already has.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../internal/sqlite3vfs
#cgo LDFLAGS: -Wl,--unresolved-symbols=ignore-all
*/
import "C"

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

func main() {}

const (
	sqliteOK    = 0
	sqliteError = 1
)

var state struct {
	mu      sync.Mutex
	started bool
	failed  error
	cfg     *config.Config
}

// verneuilTclInit is called by verneuil_extra_init at every
// sqlite3_initialize. It returns an SQLite result code; on failure the
// reason is printed on stderr, and sqlite3_initialize fails with that code
// (every test then fails, loudly).
//
//export verneuilTclInit
func verneuilTclInit() (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "verneuil-tclhook: panic during initialisation: %v\n%s", r, debug.Stack())
			rc = sqliteError
		}
	}()
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.failed != nil {
		return sqliteError
	}
	if !state.started {
		if err := start(); err != nil {
			state.failed = err
			fmt.Fprintf(os.Stderr, "verneuil-tclhook: %v\n", err)
			return sqliteError
		}
		state.started = true
	}
	// Default again: re-initialisation after sqlite3_shutdown makes the real
	// unix VFS the default.
	if err := sqlite3vfs.Register(replicator.VFSName, true, state.cfg.ChunkSize); err != nil {
		fmt.Fprintf(os.Stderr, "verneuil-tclhook: %v\n", err)
		return sqliteError
	}
	return sqliteOK
}

func start() error {
	if strings.TrimSpace(os.Getenv(config.EnvConfig)) == "" {
		return fmt.Errorf("%s is not set (this testfixture replicates every database: run it through scripts/sqlite-tcl/run.sh, or point %s at a scratch spool and file:// target)", config.EnvConfig, config.EnvConfig)
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if !cfg.ReplicateEnabled() {
		return fmt.Errorf("%s: replicate is false; the TCL suite must run with replication on", config.EnvConfig)
	}
	// The library logs on os.Stderr (read when the logger is made): send it
	// to a file when asked, so that tests comparing a child's stderr see
	// nothing of it. Go's os.Stderr only: the process's fd 2 is untouched.
	if p := os.Getenv("VERNEUIL_TCL_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("VERNEUIL_TCL_LOG: %w", err)
		}
		os.Stderr = f
	}
	cfg.MakeDefault = true
	state.cfg = cfg
	return startHooked(cfg, hookOptions{
		check:           os.Getenv("VERNEUIL_CHECK_EVERY_COMMIT") == "1",
		faultsInCapture: os.Getenv("VERNEUIL_TCL_FAULTS_IN_CAPTURE") == "1",
		maxCheckBytes:   envInt64("VERNEUIL_CHECK_MAX_BYTES", 256<<20),
		stateDir:        os.Getenv("VERNEUIL_TCL_STATE"),
	})
}

func envInt64(name string, def int64) int64 {
	v, err := strconv.ParseInt(os.Getenv(name), 10, 64)
	if err != nil {
		return def
	}
	return v
}
