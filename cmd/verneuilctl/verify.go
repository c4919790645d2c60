package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
)

func init() {
	register(&command{
		name:     "verify",
		usage:    "DB",
		summary:  "sync a database, then check that its replica is byte-identical to the file (in WAL mode: to the file with the WAL's committed frames, read under one WAL read lock)",
		examples: []string{"verneuilctl verify /srv/app.db"},
		json: `{"db": "/srv/app.db", "name": "web-1:/srv/app.db", "key": "1a2b-web-1%3A%2Fsrv%2Fapp.db",
 "version": "1764057600123456789", "length": 1048576, "source_sha256": "...", "replica_sha256": "...",
 "identical": true}`,
		run: runVerify,
	})
}

func runVerify(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	target := targetFlag(fs)
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("name one database")
	}
	path := pos[0]
	if err := fileExists(path); err != nil {
		return err
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		return err
	}
	s, err := a.store(ctx, *target)
	if err != nil {
		r.Close(ctx)
		return err
	}
	defer s.Close()
	ref, err := a.dbKey(path, "")
	if err != nil {
		r.Close(ctx)
		return err
	}
	srcHash, m, err := verifyWALSource(ctx, r, s, ref, path)
	cerr := r.Close(ctx)
	if errors.Is(err, errNotWAL) {
		srcHash, m, err = verifyRollbackSource(ctx, cfg, s, ref, path)
	} else if err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	h := sha256.New()
	counted := &chunkCounter{Store: s}
	p := a.startProgress("verify "+ref.Name, func() int64 { return counted.done(m.ChunkSize) },
		func() int64 { return m.Length })
	err = restore.Write(ctx, counted, m, &hashWriter{h: h}, 1)
	p.finish(err)
	if err != nil {
		return storeError(err, ref)
	}
	repHash := h.Sum(nil)
	res := map[string]any{"db": path, "name": ref.Name, "key": ref.Key, "version": strconv.FormatUint(m.Seq, 10), "length": m.Length,
		"source_sha256": fmt.Sprintf("%x", srcHash), "replica_sha256": fmt.Sprintf("%x", repHash),
		"identical": bytes.Equal(srcHash, repHash)}
	if a.jsonOut {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else if bytes.Equal(srcHash, repHash) {
		fmt.Fprintf(a.stdout, "ok: replica version %d of %s is identical (sha256 %x)\n", m.Seq, path, srcHash)
	}
	if !bytes.Equal(srcHash, repHash) {
		return fmt.Errorf("replica version %d differs from %s (sha256 %x vs %x); if the database is being written, retry", m.Seq, path, repHash, srcHash)
	}
	return nil
}

// verifyRollbackSource syncs the database at path (not in WAL mode), then
// hashes it under a read lock and returns the replica's latest manifest.
func verifyRollbackSource(ctx context.Context, cfg *config.Config, s blob.Store, ref dbRef, path string) ([]byte, *manifest.Manifest, error) {
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	err = syncAll(ctx, r, []string{path}, false)
	if cerr := r.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	srcHash, err := hashUnderReadLock(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	m, err := restore.Latest(ctx, s, ref.Key)
	if err != nil {
		return nil, nil, storeError(err, ref)
	}
	return srcHash, m, nil
}

// hashUnderReadLock hashes the database file while a read transaction
// holds SHARED, so no commit can change it meanwhile. The file is opened
// before the connection and closed after it: closing a descriptor drops
// the process's POSIX locks on the file.
func hashUnderReadLock(ctx context.Context, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	db, err := sql.Open("sqlite3", "file:"+url.PathEscape(path)+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read lock on %s: %w", path, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return nil, fmt.Errorf("read lock on %s: %w", path, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// hashWriter hashes sequential WriteAt calls (restore.Write with one
// worker writes chunks in order).
type hashWriter struct {
	h   interface{ Write([]byte) (int, error) }
	off int64
}

func (w *hashWriter) WriteAt(p []byte, off int64) (int, error) {
	if off != w.off {
		return 0, fmt.Errorf("hash writer: out-of-order write at %d, want %d", off, w.off)
	}
	w.off += int64(len(p))
	return w.h.Write(p)
}
