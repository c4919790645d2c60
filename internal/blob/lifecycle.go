package blob

import (
	"context"
	"time"
)

// ObjectInfo describes one stored object as a listing or a stat sees it.
// ModTime is the store's clock (S3's Last-Modified, a file's mtime): it is
// what garbage collection measures grace periods on (docs/FORMAT.md,
// "Garbage collection").
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Walker is implemented by stores that can list objects with their
// metadata without holding the whole listing in memory.
type Walker interface {
	// Walk calls fn with pages of the objects whose key starts with
	// prefix. Pages are bounded (at most about 1000 objects); the order of
	// objects is unspecified. An error from fn stops the walk and is
	// returned.
	Walk(ctx context.Context, prefix string, fn func(page []ObjectInfo) error) error
}

// Stater is implemented by stores that report one object's metadata.
type Stater interface {
	// Stat returns the object's metadata, or an error wrapping
	// ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
}

// Toucher is implemented by stores that can reset an object's
// modification time to now without sending its bytes (a copy onto
// itself on S3, utimes on a file). A copier that relies on an existing
// chunk without uploading it touches it, so that a garbage collection's
// grace period protects it again.
type Toucher interface {
	// Touch sets the object's modification time to the store's now, or
	// returns an error wrapping ErrNotFound when the object is missing.
	Touch(ctx context.Context, key string) error
}

// Lifecycle is what garbage collection needs from a store: listing with
// timestamps, stat and delete (Store.Delete takes several keys and uses
// a batch request where the store has one).
type Lifecycle interface {
	Store
	Walker
	Stater
}

// Touch implements Toucher once the store opens; a store that cannot
// touch only reports whether the object exists.
func (l *lazyStore) Touch(ctx context.Context, key string) error {
	s, err := l.store(ctx)
	if err != nil {
		return err
	}
	if t, ok := s.(Toucher); ok {
		return t.Touch(ctx, key)
	}
	ok, err := s.Exists(ctx, key)
	if err == nil && !ok {
		err = ErrNotFound
	}
	return err
}
