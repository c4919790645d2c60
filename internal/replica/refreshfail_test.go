package replica_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/replica"
)

// failing fails every read of latest while down is set, as a store that
// answers 503 (or a corrupt body when corrupt is set: a hostile answer).
type failing struct {
	blob.Store
	down, corrupt atomic.Bool
}

var errDown = errors.New("injected: service unavailable")

func (f *failing) GetTagged(ctx context.Context, key, known string) ([]byte, string, error) {
	if f.down.Load() {
		if f.corrupt.Load() {
			return []byte("not a manifest"), "bogus-tag", nil
		}
		return nil, "", errDown
	}
	return blob.GetTagged(ctx, f.Store, key, known)
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRefreshFailureVisible: while the store fails (errors, then corrupt
// answers), every check fails and is counted (Stats.RefreshErrors,
// Status.Failures, LastError, ErrorSince), the version already loaded is
// still read, the warning is logged once (not once per check), and the
// first success jumps to the newest version, skipping those committed
// meanwhile, and logs the recovery.
func TestRefreshFailureVisible(t *testing.T) {
	fs := &failing{Store: newStore(t)}
	var logs syncBuffer
	m := newManager(t, fs, func(o *replica.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	d1 := randomData(1, 3)
	publish(t, fs.Store, 100, d1, true)
	src := open(t, m, dbKey, "", "")

	fs.down.Store(true)
	for i := range 6 {
		fs.corrupt.Store(i >= 3)
		mf, err := src.Current(true)
		if err == nil || mf.Seq != 100 {
			t.Fatalf("check %d with the store failing: version %d, %v; want version 100 and an error", i, mf.Seq, err)
		}
		st := src.Status()
		if st.LastError == nil || st.Failures != i+1 || st.ErrorSince.IsZero() {
			t.Fatalf("check %d: status %+v", i, st)
		}
		// A commit the reader cannot see yet.
		publish(t, fs.Store, uint64(101+i), randomData(uint64(10+i), 3), true)
	}
	if got := readAll(t, src); !bytes.Equal(got, d1) {
		t.Fatal("the loaded version is not readable while refreshes fail")
	}
	if n := m.Stats().RefreshErrors; n != 6 {
		t.Fatalf("RefreshErrors = %d, want 6", n)
	}
	if n := strings.Count(logs.String(), "refresh failed"); n != 1 {
		t.Fatalf("%d refresh warnings for 6 failed checks, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), errDown.Error()) {
		t.Fatalf("the warning does not name the cause:\n%s", logs.String())
	}

	fs.down.Store(false)
	dNew := randomData(99, 4)
	publish(t, fs.Store, 200, dNew, true)
	mf, err := src.Current(true)
	if err != nil || mf.Seq != 200 {
		t.Fatalf("after recovery: version %d, %v; want 200", mf.Seq, err)
	}
	if st := src.Status(); st.LastError != nil || st.Failures != 0 {
		t.Fatalf("after recovery: status %+v", st)
	}
	if got := readAll(t, src); !bytes.Equal(got, dNew) {
		t.Fatal("version 200 does not read its data")
	}
	if !strings.Contains(logs.String(), "refresh works again") || !strings.Contains(logs.String(), "failures=6") {
		t.Fatalf("no recovery line with the count:\n%s", logs.String())
	}
}
