package blob

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
)

// ErrUnavailable is returned (wrapped) by every request to a store opened
// with OpenLazy whose opening keeps failing (a target directory on a
// volume not mounted yet, say). It is transient: callers retry, and the
// store opens as soon as it can.
var ErrUnavailable = errors.New("target unavailable")

// OpenLazy is Open for processes that must not fail because a target is
// unavailable when they start. A malformed URL or an unknown scheme is
// still an error; when the store itself cannot be opened, OpenLazy
// returns a Store that tries again at each request (failing it with an
// error wrapping ErrUnavailable until then) together with the open error,
// for the caller to log. The returned Store is never nil when the error is
// not a URL or scheme error.
func OpenLazy(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse target url %q: %w", rawURL, err)
	}
	openersMu.Lock()
	_, ok := openers[u.Scheme]
	openersMu.Unlock()
	if !ok {
		return Open(ctx, rawURL, opts) // the error names the schemes
	}
	s, err := Open(ctx, rawURL, opts)
	if err == nil {
		return s, nil
	}
	// Named as the store names itself once open, as far as the URL says.
	name := u.Redacted()
	switch {
	case u.Scheme == "file" && u.Path != "":
		name = "file://" + filepath.Clean(u.Path)
	case u.Scheme == "s3" && u.User == nil:
		name = "s3://" + u.Host + "/"
		if p := strings.Trim(u.Path, "/"); p != "" {
			name += p + "/"
		}
		if opts.Endpoint != "" {
			name += " at " + opts.Endpoint
		}
	}
	return &lazyStore{url: rawURL, opts: opts, name: name, err: err}, err
}

// lazyStore opens its store at the first request that can.
type lazyStore struct {
	url  string
	opts Options
	name string

	mu  sync.Mutex
	s   Store
	err error // the last open error
}

func (l *lazyStore) store(ctx context.Context) (Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		return l.s, nil
	}
	s, err := Open(ctx, l.url, l.opts)
	if err != nil {
		l.err = err
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	l.s, l.err = s, nil
	return s, nil
}

// String implements Store.
func (l *lazyStore) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		return l.s.String()
	}
	return l.name
}

// Put implements Store.
func (l *lazyStore) Put(ctx context.Context, key string, data []byte) error {
	s, err := l.store(ctx)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return s.Put(ctx, key, data)
}

// Get implements Store.
func (l *lazyStore) Get(ctx context.Context, key string) ([]byte, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return s.Get(ctx, key)
}

// GetRange implements Store.
func (l *lazyStore) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return s.GetRange(ctx, key, offset, length)
}

// GetVersioned implements Store.
func (l *lazyStore) GetVersioned(ctx context.Context, key string) ([]byte, string, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", key, err)
	}
	return s.GetVersioned(ctx, key)
}

// PutIf implements Store.
func (l *lazyStore) PutIf(ctx context.Context, key string, data []byte, ifVersion string) error {
	s, err := l.store(ctx)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return s.PutIf(ctx, key, data, ifVersion)
}

// Exists implements Store.
func (l *lazyStore) Exists(ctx context.Context, key string) (bool, error) {
	s, err := l.store(ctx)
	if err != nil {
		return false, fmt.Errorf("exists %s: %w", key, err)
	}
	return s.Exists(ctx, key)
}

// List implements Store.
func (l *lazyStore) List(ctx context.Context, prefix string) ([]string, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s*: %w", prefix, err)
	}
	return s.List(ctx, prefix)
}

// Delete implements Store.
func (l *lazyStore) Delete(ctx context.Context, keys ...string) error {
	s, err := l.store(ctx)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return s.Delete(ctx, keys...)
}

// Close implements Store.
func (l *lazyStore) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s == nil {
		return nil
	}
	return l.s.Close()
}
