package blob

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotModified is returned (wrapped) by TagChecker.Tag when the object
// still has the tag the caller knows.
var ErrNotModified = errors.New("blob not modified")

// TagChecker is implemented by stores that can tell with one small request
// (no body) whether an object changed since the caller last saw it: an S3
// HEAD with If-None-Match, a stat(2) of a local file. Read replicas use it
// to poll a database's "latest" manifest cheaply.
//
// Tags are opaque, change whenever the object's content may have changed,
// and are only comparable with tags returned by Tag on the same store
// (they are not the versions of GetVersioned).
type TagChecker interface {
	// Tag returns the current tag of key. When known is not "" and the
	// object still has that tag, it returns an error wrapping
	// ErrNotModified. A missing object is an error wrapping ErrNotFound.
	Tag(ctx context.Context, key, known string) (string, error)
}

// Tag asks s for the tag of key (see TagChecker). A store that does not
// implement TagChecker returns "" and no error: the caller then cannot
// tell whether the object changed and must read it.
func Tag(ctx context.Context, s Store, key, known string) (string, error) {
	tc, ok := s.(TagChecker)
	if !ok {
		return "", nil
	}
	return tc.Tag(ctx, key, known)
}

// Tag implements TagChecker by opening the store first.
func (l *lazyStore) Tag(ctx context.Context, key, known string) (string, error) {
	s, err := l.store(ctx)
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", key, err)
	}
	return Tag(ctx, s, key, known)
}

// TaggedGetter is implemented by stores that can make TagChecker's check
// and the read of a changed object one request: an S3 GET with
// If-None-Match, an open and fstat(2) of a local file.
type TaggedGetter interface {
	// GetTagged returns the object and its current tag (as Tag returns
	// it). When known is not "" and the object still has that tag, it
	// returns no data and an error wrapping ErrNotModified. A missing
	// object is an error wrapping ErrNotFound.
	GetTagged(ctx context.Context, key, known string) (data []byte, tag string, err error)
}

// GetTagged reads key and its tag unless it still has tag known (see
// TaggedGetter): one request on a TaggedGetter; otherwise Tag, then Get
// when the tag changed (the tag is taken first, so a change in between
// shows at the next check, never the reverse). A store that implements
// neither returns the object with tag "".
func GetTagged(ctx context.Context, s Store, key, known string) ([]byte, string, error) {
	if tg, ok := s.(TaggedGetter); ok {
		return tg.GetTagged(ctx, key, known)
	}
	tag, err := Tag(ctx, s, key, known)
	if err != nil {
		return nil, tag, err
	}
	data, err := s.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	return data, tag, nil
}

// GetTagged implements TaggedGetter by opening the store first.
func (l *lazyStore) GetTagged(ctx context.Context, key, known string) ([]byte, string, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", key, err)
	}
	return GetTagged(ctx, s, key, known)
}
