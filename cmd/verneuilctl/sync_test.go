package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/verneuil-go/verneuil/internal/copier"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// TestRegression_SyncRetriesDeferred: a sync whose capture was deferred
// (another process's build held the spool, or a writer committed during a
// sliced rescan) is retried rather than reported as a failure; the retries
// are bounded.
func TestRegression_SyncRetriesDeferred(t *testing.T) {
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
	other := errors.New("disk on fire")
	if err := retrySync(ctx, func() error { calls++; return other }); !errors.Is(err, other) || calls != 1 {
		t.Fatalf("other error: %v after %d attempts; want it after 1", err, calls)
	}
}
