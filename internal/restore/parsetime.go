package restore

import (
	"context"
	"fmt"
	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/names"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// ParseTime parses a point in time as restore --at and the snapshot VFS's
// at= parameter take it: RFC 3339 (with or without fractional seconds),
// unix seconds, or a negative duration relative to now ("-10m").
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if strings.HasPrefix(s, "-") {
		if d, err := time.ParseDuration(s[1:]); err == nil {
			return time.Now().Add(-d), nil
		}
	}
	// Unix seconds within the range of a time in nanoseconds (1678 to
	// 2262); NaN and infinities are not times.
	if f, err := strconv.ParseFloat(s, 64); err == nil && math.Abs(f) < math.MaxInt64/1e9 {
		return time.Unix(0, int64(f*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("bad time %q: want RFC 3339 (2026-01-02T15:04:05Z), unix seconds, or -DURATION", s)
}

// ManifestFile reads and verifies a manifest saved to a local file
// (verneuilctl manifest --out), a pinned version. A delta manifest (format
// 2) is resolved against its base, fetched from s.
func ManifestFile(ctx context.Context, s blob.Store, path string) (*manifest.Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest file %s: %w", path, err)
	}
	_, d, err := manifest.DecodeObject(data)
	var m *manifest.Manifest
	if err == nil {
		var fetch func(uint64) ([]byte, error)
		if d != nil {
			fetch = BaseFetcher(ctx, s, names.Key(d.Header.Name))
		}
		m, _, err = manifest.Resolve(data, fetch)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest file %s: %w", path, err)
	}
	return m, nil
}
