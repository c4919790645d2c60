package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/copier"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// TestRegression_SyncRetriesDeferred: a sync whose capture was deferred
// (another process's build held the spool, or a writer committed during a
// sliced rescan) is retried rather than reported as a failure; the retries
// are bounded.
func TestRegression_SyncRetriesDeferred(t *testing.T) {
	defer func(d time.Duration) { syncRetryPause = d }(syncRetryPause)
	syncRetryPause = time.Millisecond
	ctx := context.Background()
	calls := 0
	err := retrySync(ctx, func() error {
		calls++
		switch calls {
		case 1:
			return fmt.Errorf("flush x.db: %w", tracker.ErrDeferred)
		case 2:
			return fmt.Errorf("flush x.db: %w", copier.ErrChunkLost)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("retrySync: %v after %d attempts; want success after 3", err, calls)
	}
	calls = 0
	err = retrySync(ctx, func() error { calls++; return tracker.ErrDeferred })
	if !errors.Is(err, tracker.ErrDeferred) || calls != syncAttempts {
		t.Fatalf("always deferred: %v after %d attempts; want ErrDeferred after %d", err, calls, syncAttempts)
	}
	calls = 0
	err = retrySync(ctx, func() error { calls++; return copier.ErrChunkLost })
	if !errors.Is(err, copier.ErrChunkLost) || calls != syncChunkLostLimit {
		t.Fatalf("always lost: %v after %d attempts; want ErrChunkLost after %d", err, calls, syncChunkLostLimit)
	}
	calls = 0
	other := errors.New("disk on fire")
	if err := retrySync(ctx, func() error { calls++; return other }); !errors.Is(err, other) || calls != 1 {
		t.Fatalf("other error: %v after %d attempts; want it after 1", err, calls)
	}
}

// TestDeferredPauseDoublesToASecond: the pauses after deferred attempts
// double from syncRetryPause and stop at syncRetryMaxPause, so that the
// attempts of one sync span about 15 s.
func TestDeferredPauseDoublesToASecond(t *testing.T) {
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	var total time.Duration
	for i, w := range want {
		if got := deferredPause(i); got != w*time.Millisecond {
			t.Errorf("pause %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	for i := range syncAttempts - 1 {
		total += deferredPause(i)
	}
	if total < 10*time.Second || total > 20*time.Second {
		t.Errorf("%d deferred attempts pause %v in all, want 10-20 s", syncAttempts, total)
	}
}
