package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// verifyWALAttempts bounds the snapshots verify reads of a database in WAL
// mode whose writers keep replacing the replica's latest version.
const verifyWALAttempts = 5

// verifyWALSource verifies a database in WAL mode: under one WAL read
// lock it captures the committed state (walsync.go), uploads it and
// hashes it, then returns the hash and the replica's latest manifest,
// which must be that state (its version id). When a writer's process
// uploaded a later state meanwhile, it reads again, at most
// verifyWALAttempts times. errNotWAL when the database is not in WAL mode.
func verifyWALSource(ctx context.Context, r *replicator.Replicator, s blob.Store, ref dbRef, path string) ([]byte, *manifest.Manifest, error) {
	var lastErr error
	for range verifyWALAttempts {
		var srcHash, id []byte
		err := withWALSnapshot(ctx, path, func(snap *tracker.WALSnapshot) error {
			if err := r.CaptureWAL(path, snap); err != nil {
				return err
			}
			if err := r.FlushDB(ctx, path); err != nil {
				return err
			}
			h, err := hashSource(snap.Source(), snap.Size())
			srcHash, id = h, snap.VersionID()
			return err
		})
		if errors.Is(err, tracker.ErrDeferred) {
			lastErr = err
			if err := sleepCtx(ctx, syncRetryPause); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		m, err := restore.Latest(ctx, s, ref.Key)
		if err != nil {
			return nil, nil, storeError(err, ref)
		}
		if bytes.Equal(m.VersionID, id) {
			return srcHash, m, nil
		}
		lastErr = fmt.Errorf("the replica's latest version %d is another state than the database's (a writer committed while verify ran); retry", m.Seq)
	}
	return nil, nil, fmt.Errorf("verify %s: %w", path, lastErr)
}

// hashSource returns the SHA-256 of the size bytes of src.
func hashSource(src tracker.Source, size int64) ([]byte, error) {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		b := buf[:min(int64(len(buf)), size-off)]
		if err := src.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("read at %d: %w", off, err)
		}
		h.Write(b)
		off += int64(len(b))
	}
	return h.Sum(nil), nil
}

// sleepCtx pauses for d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
