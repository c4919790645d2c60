//go:build cgo && verneuil_ext

// Command verneuil-ext is the loadable SQLite extension libverneuil.so, for
// hosts that are not Go programs: the sqlite3 shell, Python's sqlite3
// module, C programs. Build it with scripts/build-ext.sh, which runs
//
//	go build -buildmode=c-shared -tags verneuil_ext \
//	    -ldflags "-extldflags '-Wl,--version-script=cmd/verneuil-ext/libverneuil.map -Wl,-soname,libverneuil.so'" \
//	    -o bin/libverneuil.so ./cmd/verneuil-ext
//
// (the version script, which keeps the dynamic symbol table to the entry
// point and the C API of include/verneuil.h, cannot be given in a #cgo
// LDFLAGS line: the go command does not allow --version-script there).
//
// The entry point sqlite3_verneuil_init is C, in internal/sqlite3vfs/ext.c;
// it calls the initialiser this package installs with
// sqlite3vfs.SetExtensionInit. docs/EXTENSION.md is the user documentation.
//
// Without the verneuil_ext tag this package is empty: a build of it would
// link a second SQLite (mattn's) into the host process.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	_ "github.com/verneuil-go/verneuil/internal/blob/fileblob" // file:// targets
	_ "github.com/verneuil-go/verneuil/internal/blob/s3blob"   // s3:// targets
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

func main() {}

func init() { sqlite3vfs.SetExtensionInit(initExtension) }

// component is one part of the extension started when it is first loaded:
// each registers one or more VFSes with the host's SQLite.
type component struct {
	name  string
	start func(cfg *config.Config) error
}

// components are started in order by the first successful load. The
// read-replica VFS "verneuil_snapshot" is registered by replicator.Start
// with the replicating one, so that one entry point, one configuration and
// one Go runtime serve both.
var components = []component{
	{"verneuil", startReplication},
}

// state is the extension's process-wide state; mu serialises loads and the
// C API.
var state struct {
	mu sync.Mutex
	// configured is set by verneuil_configure: cfg then replaces
	// VERNEUIL_CONFIG.
	configured bool
	cfg        *config.Config
	source     string
	// started names the components already running; loaded is set once all
	// of them are.
	started map[string]bool
	loaded  bool
	rep     *replicator.Replicator
	log     *slog.Logger
}

// loadConfig returns the configuration to start with: the one given to
// verneuil_configure, else VERNEUIL_CONFIG, else the embedded default. The
// environment is C's as it is now (syncEnviron), not the one the process
// started with.
// Caller holds state.mu.
func loadConfig() (*config.Config, string, error) {
	if err := syncEnviron(); err != nil {
		return nil, "", err
	}
	if state.configured {
		return state.cfg, state.source, nil
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return nil, "", err // "VERNEUIL_CONFIG: config: unknown key ..."
	}
	if strings.TrimSpace(os.Getenv(config.EnvConfig)) == "" {
		return cfg, "embedded default (" + config.EnvConfig + " unset)", nil
	}
	return cfg, config.EnvConfig, nil
}

// initExtension is called by sqlite3_verneuil_init at every load. The first
// successful call starts every component; later calls return nil. After a
// failure nothing is kept, and the next load tries again (re-reading the
// configuration).
func initExtension() error {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.loaded {
		return nil
	}
	cfg, src, err := loadConfig()
	if err != nil {
		return fmt.Errorf("verneuil: %w", err)
	}
	// Logs go to stderr at the configured level, never to stdout (which
	// belongs to the host, e.g. the shell's query results).
	state.log = replicator.NewLogger(cfg)
	slog.SetDefault(state.log)
	if state.started == nil {
		state.started = map[string]bool{}
	}
	for _, c := range components {
		if state.started[c.name] {
			continue
		}
		if err := c.start(cfg); err != nil {
			return fmt.Errorf("verneuil: start %s: %w", c.name, err)
		}
		state.started[c.name] = true
	}
	state.loaded = true
	state.log.Info("verneuil extension loaded", "config", src, "spool_dir", cfg.SpoolDir,
		"targets", len(cfg.Targets), "make_default", cfg.MakeDefault,
		"replicate", cfg.ReplicateEnabled(), "flush_on_close", cfg.FlushOnClose)
	return nil
}

// startReplication registers the replicating VFS "verneuil" (as SQLite's
// default with make_default) and starts the tracker and the copier.
func startReplication(cfg *config.Config) error {
	rep, err := replicator.Start(context.Background(), cfg)
	if err != nil {
		return err
	}
	state.rep = rep
	return nil
}
