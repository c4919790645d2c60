package verneuil

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/verneuil-go/verneuil/internal/names"
)

// FlushDB uploads what was committed to the database at path and returns
// once it is in every target. The database need not be open in this
// process: the spool left by a closed connection (or by an earlier process
// with the same configuration) is uploaded as well.
func (r *Replicator) FlushDB(ctx context.Context, path string) error {
	canon, err := names.Canonical(path)
	if err != nil {
		return err
	}
	if db := r.tracker.DB(canon); db != nil {
		return db.Flush(ctx)
	}
	if err := r.copier.Upload(ctx, names.Key(ReplicaName(r.cfg, "", canon))); err != nil {
		return fmt.Errorf("flush %s: %w", canon, err)
	}
	return nil
}

// ReplicaName returns the replica name of the database at path: the name
// configured for it in cfg.Names, or "HOST:PATH". With host empty, HOST is
// the configured (or system) host name and path is made canonical (absolute,
// symlinks resolved) as the VFS does; with a host given, path names a
// database of that host: it must be absolute and is only cleaned, and
// cfg.Names does not apply.
func ReplicaName(cfg *Config, host, path string) string {
	if host != "" {
		return names.Replica(host, filepath.Clean(path))
	}
	canon, err := names.Canonical(path)
	if err != nil {
		canon = filepath.Clean(path)
	}
	if n := cfg.Names[canon]; n != "" {
		return n
	}
	return names.Replica(names.Hostname(cfg.Hostname), canon)
}

// ReplicaKey returns the key under which the replica of the database at
// path is stored in a target (its objects are dbs/KEY/latest and
// dbs/KEY/manifests/SEQ); PRAGMA verneuil_manifest_name returns the same
// for an open database. host and path are as for ReplicaName.
func ReplicaKey(cfg *Config, host, path string) string {
	return names.Key(ReplicaName(cfg, host, path))
}
