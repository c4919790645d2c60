//go:build !cgo

package sqlite3vfs

import (
	"errors"
	"log/slog"

	"github.com/verneuil-go/verneuil/internal/replica"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// Hooks receives the VFS events; *tracker.Manager implements it.
type Hooks interface {
	Open(path string) uint64
	Capture(h uint64, src tracker.Source, ev tracker.Event) (wantCheck bool)
	Pragma(h uint64, src tracker.Source, name, arg string) (string, error)
	Release(h uint64)
}

// ErrNoCgo is returned when the library is built without cgo.
var ErrNoCgo = errors.New("verneuil: the replicating VFS needs cgo (built with CGO_ENABLED=0)")

// SetHooks is a no-op without cgo.
func SetHooks(Hooks, *slog.Logger) {}

// Register fails without cgo.
func Register(string, bool, int) error { return ErrNoCgo }

// Stats are the shim's counters.
type Stats struct {
	Commits, Rollbacks, Checks, XattrErrors, JournalsPaired, SliceHolds int64
	WALCommits, WALResets, WALLastMxFrame                               int64
	WALQueued, WALQueueTakes                                            int64
}

// WALQueueFor is nil without cgo: no commit is queued by a VFS.
func WALQueueFor(uint64) tracker.WALQueue { return nil }

// ReadStats returns zeros without cgo.
func ReadStats() Stats { return Stats{} }

// MakeDefault fails without cgo.
func MakeDefault(string) error { return ErrNoCgo }

// RegisterSnapshot fails without cgo.
func RegisterSnapshot(string, *replica.Manager, int64) error { return ErrNoCgo }

// SetSnapshotManager is a no-op without cgo.
func SetSnapshotManager(*replica.Manager) {}

// SnapshotMemCache is nil without cgo.
func SnapshotMemCache() replica.MemCache { return nil }

// SnapshotStats are the C side's counters.
type SnapshotStats struct {
	Reads      int64 `json:"reads"`       // xRead calls
	Misses     int64 `json:"misses"`      // chunk misses handed to Go
	Begins     int64 `json:"begins"`      // read transactions that called Go
	Versions   int64 `json:"versions"`    // versions loaded into C
	CacheBytes int64 `json:"cache_bytes"` // bytes in the memory cache now
	Evictions  int64 `json:"evictions"`   // chunks evicted from it
}

// ReadSnapshotStats returns zeros without cgo.
func ReadSnapshotStats() SnapshotStats { return SnapshotStats{} }
