package main

import (
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
const verifyWALAttempts = syncAttempts

// verifyWALSource verifies a database in WAL mode: under one WAL read
// lock it captures the committed state (walsync.go), uploads it, reads
// the replica's latest manifest and hashes the source's state at that
// version's WAL position (the captured state, or a later commit a
// writer's process uploaded meanwhile, composed from the same
// generation's frames). It returns the hash and the manifest. A latest
// version the snapshot cannot compose (another WAL generation) makes it
// read again, at most verifyWALAttempts times. errNotWAL when the
// database is not in WAL mode.
func verifyWALSource(ctx context.Context, r *replicator.Replicator, s blob.Store, ref dbRef, path string) ([]byte, *manifest.Manifest, error) {
	var lastErr error
	for attempt := range verifyWALAttempts {
		var srcHash []byte
		var m *manifest.Manifest
		err := withWALSnapshot(ctx, path, func(snap *tracker.WALSnapshot) error {
			if err := r.CaptureWAL(path, snap); err != nil {
				return err
			}
			if err := r.FlushDB(ctx, path); err != nil {
				return err
			}
			var err error
			if m, err = restore.Latest(ctx, s, ref.Key); err != nil {
				return storeError(err, ref)
			}
			// The latest version may be a later commit that a writer's
			// process uploaded meanwhile: compose that state.
			at, err := snap.At(m.VersionID)
			if err != nil {
				return fmt.Errorf("the replica's latest version %d is not a state this snapshot can compose (%v): %w", m.Seq, err, tracker.ErrDeferred)
			}
			if srcHash, err = hashSource(at.Source(), at.Size()); err != nil {
				return err
			}
			return at.Settled()
		})
		if errors.Is(err, tracker.ErrDeferred) {
			lastErr = err
			if err := sleepCtx(ctx, deferredPause(attempt)); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return srcHash, m, nil
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
