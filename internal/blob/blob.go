// Package blob defines the blob-store contract that replication targets
// implement (a flat namespace of objects in a bucket-like store), the errors
// they classify, and the registry that opens a store from a target URL.
//
// Implementations live in sub-packages (blob/fileblob for local directories,
// blob/s3blob for S3-compatible stores) and register a URL scheme in init.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"sync"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// ErrNotFound is returned (wrapped) when an object does not exist.
// errors.Is(err, fs.ErrNotExist) also holds for it.
var ErrNotFound = fmt.Errorf("blob not found: %w", fs.ErrNotExist)

// ErrPrecondition is returned (wrapped) by PutIf when the stored object's
// version does not match the expected one (a lost race).
var ErrPrecondition = errors.New("blob precondition failed")

// MaxObjectSize bounds every object a Store returns from Get and
// GetVersioned: the largest object of the format (a manifest's zstd
// frame). Larger objects are refused without being read (ErrTooLarge),
// so a broken or hostile store cannot make a reader allocate without
// bound. GetRange reads at most the length asked.
const MaxObjectSize = manifest.MaxObjectSize

// ErrTooLarge is returned (wrapped, with ErrPermanent) by Get and
// GetVersioned for an object larger than MaxObjectSize.
var ErrTooLarge = fmt.Errorf("object larger than %d bytes: %w", MaxObjectSize, ErrPermanent)

// ErrPermanent marks errors that retrying will not fix (bad credentials,
// missing bucket, access denied). Transient errors (timeouts, 5xx, resets)
// are not wrapped with it.
var ErrPermanent = errors.New("permanent blob store error")

// Store is a flat namespace of objects. Keys are slash-separated,
// non-empty, and contain no "." or ".." segments.
//
// Implementations must be safe for concurrent use by many goroutines and
// processes. Methods that find no object return an error for which
// errors.Is(err, ErrNotFound) and errors.Is(err, fs.ErrNotExist) hold.
type Store interface {
	// String describes the store for logs and errors, without secrets.
	String() string

	// Put stores data under key, replacing any existing object atomically:
	// readers see the old or the new bytes, never a mix.
	Put(ctx context.Context, key string, data []byte) error

	// Get returns the whole object; an object larger than MaxObjectSize
	// is an error wrapping ErrTooLarge.
	Get(ctx context.Context, key string) ([]byte, error)

	// GetRange returns up to length bytes starting at offset. Reading past
	// the end returns the bytes that exist (possibly none) and no error.
	GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error)

	// GetVersioned returns the object with an opaque version tag (an ETag)
	// to pass to PutIf. Objects larger than MaxObjectSize are refused as
	// by Get.
	GetVersioned(ctx context.Context, key string) (data []byte, version string, err error)

	// PutIf stores data only if the object's current version equals
	// ifVersion, or, when ifVersion is "", only if no object exists.
	// Otherwise it returns an error wrapping ErrPrecondition.
	PutIf(ctx context.Context, key string, data []byte, ifVersion string) error

	// Exists reports whether an object exists.
	Exists(ctx context.Context, key string) (bool, error)

	// List returns every key that starts with prefix, in byte order.
	List(ctx context.Context, prefix string) ([]string, error)

	// Delete removes objects; deleting a missing object is not an error.
	Delete(ctx context.Context, keys ...string) error

	// Close releases resources. The store must not be used afterwards.
	Close() error
}

// Options carries target settings besides the URL (S3 endpoint, region,
// addressing style).
type Options struct {
	Endpoint  string
	Region    string
	PathStyle bool
}

// Opener opens a store for a parsed target URL.
type Opener func(ctx context.Context, u *url.URL, opts Options) (Store, error)

var (
	openersMu sync.Mutex
	openers   = map[string]Opener{}
)

// Register makes an Opener available for a URL scheme. It panics when the
// scheme is registered twice (a programming error).
func Register(scheme string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("blob: scheme registered twice: " + scheme)
	}
	openers[scheme] = open
}

// Schemes lists the registered URL schemes.
func Schemes() []string {
	openersMu.Lock()
	defer openersMu.Unlock()
	var out []string
	for s := range openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens the store that rawURL names, with the opener registered for its
// scheme.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse target url %q: %w", rawURL, err)
	}
	// Never echo a password that the URL may carry.
	shown := u.Redacted()
	openersMu.Lock()
	open, ok := openers[u.Scheme]
	openersMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("target url %q: unsupported scheme %q (supported: %v)", shown, u.Scheme, Schemes())
	}
	s, err := open(ctx, u, opts)
	if err != nil {
		return nil, fmt.Errorf("open target %q: %w", shown, err)
	}
	return s, nil
}

// ValidKey reports whether key is acceptable to every Store.
func ValidKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	start := 0
	for i := 0; i <= len(key); i++ {
		if i == len(key) || key[i] == '/' {
			seg := key[start:i]
			if seg == "" || seg == "." || seg == ".." {
				return fmt.Errorf("invalid key %q: empty, \".\" or \"..\" segment", key)
			}
			start = i + 1
		} else if key[i] == 0 {
			return fmt.Errorf("invalid key %q: NUL byte", key)
		}
	}
	return nil
}
