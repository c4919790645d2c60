// Package verneuil replicates SQLite databases (rollback-journal mode) to
// S3-compatible blob stores or a local directory, with no change to the
// application's SQL.
//
// A Go program that uses database/sql with github.com/mattn/go-sqlite3
// calls Start once; it registers the replicating VFS "verneuil" (and makes
// it SQLite's default when the configuration says "make_default"), then
// opens databases as usual:
//
//	cfg, err := verneuil.ConfigFromEnv() // VERNEUIL_CONFIG, else the default
//	r, err := verneuil.Start(ctx, cfg)
//	defer r.Close(ctx)
//	db, err := sql.Open("sqlite3", "file:app.db?vfs=verneuil")
//
// Every committed write transaction is captured by the VFS, spooled on local
// disk and uploaded in the background; replication problems are logged and
// never fail a write. Flush (or PRAGMA verneuil_flush) waits until what was
// committed is in the store.
//
// Start also registers the read-only VFS "verneuil_snapshot", which queries
// replicas straight from the store ("file:verneuil://HOST/PATH?vfs=verneuil_snapshot").
//
// The configuration is the JSON document of docs/CONFIG.md, the same for
// this package, the loadable extension and verneuilctl; a program reads it
// with ConfigFromEnv or LoadConfig (which also takes inline JSON).
//
// A Go program cannot load libverneuil.so (one Go runtime per process): it
// links this package instead.
package verneuil

import (
	"context"
	"errors"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

// VFSName is the name of the replicating VFS.
const VFSName = "verneuil"

// SnapshotVFSName is the name of the read-only VFS that reads replicas
// straight from the store ("file:verneuil://HOST/PATH?vfs=verneuil_snapshot").
const SnapshotVFSName = "verneuil_snapshot"

// Config is a parsed, validated replication configuration: the JSON
// document of docs/CONFIG.md. Obtain one with ConfigFromEnv, LoadConfig or
// DefaultConfig; its String method prints the effective configuration
// (defaults filled in) as JSON. A nil or zero Config is DefaultConfig.
type Config struct {
	c *config.Config
}

// DefaultConfig returns the embedded default: a local-directory target and
// a spool under the user's data directory.
func DefaultConfig() *Config { return &Config{c: config.Default()} }

// ConfigFromEnv reads the VERNEUIL_CONFIG environment variable (inline JSON
// or @file); unset means DefaultConfig.
func ConfigFromEnv() (*Config, error) { return wrapConfig(config.FromEnv()) }

// LoadConfig parses inline JSON ("{...}"), "@file" or a file path. Unknown
// keys and values out of range are errors naming the key.
func LoadConfig(spec string) (*Config, error) { return wrapConfig(config.Load(spec)) }

func wrapConfig(c *config.Config, err error) (*Config, error) {
	if err != nil {
		return nil, err
	}
	return &Config{c: c}, nil
}

// String returns the effective configuration as JSON.
func (c *Config) String() string { return c.internal().String() }

// internal returns the configuration c stands for.
func (c *Config) internal() *config.Config {
	if c == nil || c.c == nil {
		return config.Default()
	}
	return c.c
}

// Replicator is the running replication of a process.
type Replicator struct {
	r *replicator.Replicator
}

// Start configures replication for the process and registers the VFSs
// named VFSName and SnapshotVFSName; a nil cfg means DefaultConfig. Only
// one Replicator may run at a time; Close it before starting another.
func Start(ctx context.Context, cfg *Config) (*Replicator, error) {
	r, err := replicator.Start(ctx, cfg.internal())
	if err != nil {
		return nil, err
	}
	return &Replicator{r: r}, nil
}

// ErrClosed is returned by Flush and FlushDB after Close: what is
// committed after Close is not replicated, so no flush can vouch for it.
var ErrClosed = errors.New("verneuil: replication is closed")

// publicError returns err with the wiring's sentinel errors replaced by
// this package's.
func publicError(err error) error {
	if errors.Is(err, replicator.ErrClosed) {
		return ErrClosed
	}
	return err
}

// Flush uploads everything committed so far through this process and
// returns once it is in every target.
func (r *Replicator) Flush(ctx context.Context) error { return publicError(r.r.Flush(ctx)) }

// FlushDB uploads what was committed to the database at path and returns
// once it is in every target. The database need not be open in this
// process: the spool left by a closed connection (or by an earlier process
// with the same configuration) is uploaded as well.
func (r *Replicator) FlushDB(ctx context.Context, path string) error {
	return publicError(r.r.FlushDB(ctx, path))
}

// Close builds pending manifests, tries to upload them within ctx, and
// stops background work. The VFS stays registered (SQLite cannot
// unregister a VFS that connections may use) but captures nothing more.
// Connections still open keep passing through unreplicated after a new
// Start (a warning is logged): reopen them to replicate again.
func (r *Replicator) Close(ctx context.Context) error { return r.r.Close(ctx) }
