package config

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// Validate checks every field of c and returns the first problem found, as an
// error naming the key ("config: KEY: problem"). It does not apply defaults:
// zero-valued tunables are errors here (Parse and Default apply defaults
// first). When a local directory lies in the fallback data directory
// TMPDIR/verneuil-UID (HOME unset), Validate creates that directory (0700)
// and checks that it is the current user's (see DataDir).
func (c *Config) Validate() error {
	if err := checkDir("spool_dir", c.SpoolDir); err != nil {
		return err
	}
	if len(c.Targets) == 0 {
		return errors.New("config: targets: at least one target is required")
	}
	for i, t := range c.Targets {
		if err := t.validate(fmt.Sprintf("targets[%d]", i)); err != nil {
			return err
		}
	}
	if err := checkDir("cache_dir", c.CacheDir); err != nil {
		return err
	}
	if n := c.ChunkSize; n < MinChunkSize || bits.OnesCount64(uint64(n)) != 1 {
		return fmt.Errorf("config: chunk_size: %d is not a power of two ≥ %d", n, MinChunkSize)
	}
	if n := c.ChunkSize; n > MaxChunkSize {
		return fmt.Errorf("config: chunk_size: %d exceeds the maximum %d (16 MiB)", n, MaxChunkSize)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"upload_interval", c.UploadInterval},
		{"scan_interval", c.ScanInterval},
		{"flush_timeout", c.FlushTimeout},
		{"gc_grace", c.GCGrace},
		{"retention.keep_all", c.Retention.KeepAll},
		{"retention.hourly", c.Retention.Hourly},
		{"retention.daily", c.Retention.Daily},
		{"snapshot_refresh_interval", c.SnapshotRefreshInterval},
		{"snapshot_timeout", c.SnapshotTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("config: %s: %v must be positive", d.key, d.v)
		}
	}
	if h := c.HistoryInterval; h != nil && (*h < 0 || *h > MaxHistoryInterval) {
		return fmt.Errorf("config: history_interval: %v must be between 0 (every version) and %v", *h, MaxHistoryInterval)
	}
	if c.GCInterval < 0 {
		return fmt.Errorf("config: gc_interval: %v must not be negative (0 disables periodic gc)", c.GCInterval)
	}
	for name, w := range c.Retention.Databases {
		if w.KeepAll < 0 || w.Hourly < 0 || w.Daily < 0 {
			return fmt.Errorf("config: retention.databases[%q]: durations must not be negative", name)
		}
	}
	if err := c.validatePackBytes(); err != nil {
		return err
	}
	if err := c.validateRepackThreshold(); err != nil {
		return err
	}
	if n := c.MaxDeltaChain; n < 1 || n > MaxMaxDeltaChain {
		return fmt.Errorf("config: max_delta_chain: %d is out of range 1..%d", n, MaxMaxDeltaChain)
	}
	if n := c.CopierWorkers; n < 1 || n > MaxCopierWorkers {
		return fmt.Errorf("config: copier_workers: %d is out of range 1..%d", n, MaxCopierWorkers)
	}
	if r := c.RateLimit; !(r > 0) || math.IsInf(r, 0) {
		return fmt.Errorf("config: rate_limit: %v must be a positive number of requests per second", r)
	}
	if n := c.RateBurst; n < 1 {
		return fmt.Errorf("config: rate_burst: %d must be at least 1", n)
	}
	if n := c.SnapshotMemoryCache; n < 1<<20 {
		return fmt.Errorf("config: snapshot_memory_cache: %d bytes is less than 1 MiB", n)
	}
	if n := c.SnapshotDiskCache; n < -1 {
		return fmt.Errorf("config: snapshot_disk_cache: %d must be a number of bytes, or -1 for no disk cache", n)
	}
	if err := checkHostname(c.Hostname); err != nil {
		return err
	}
	keys := make([]string, 0, len(c.Names))
	for k := range c.Names {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	byName := make(map[string]string, len(keys))
	for _, k := range keys {
		if err := checkName(k, c.Names[k]); err != nil {
			return err
		}
		// Two databases with one name would share a spool and a key, and
		// the replica would alternate between them.
		if other, dup := byName[c.Names[k]]; dup {
			return fmt.Errorf("config: names: %q and %q are both mapped to replica name %q (each database needs its own name)", other, k, c.Names[k])
		}
		byName[c.Names[k]] = k
	}
	if err := CheckLogLevel(c.LogLevel); err != nil {
		return fmt.Errorf("config: log_level: %w", err)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("config: log_format: %q is not one of text, json", c.LogFormat)
	}
	return c.checkTempHome()
}

// CheckLogLevel returns an error unless level is one of debug, info, warn,
// error (the values of log_level; verneuilctl --log-level checks it too).
func CheckLogLevel(level string) error {
	switch level {
	case "debug", "info", "warn", "error":
		return nil
	}
	return fmt.Errorf("%q is not one of debug, info, warn, error", level)
}

func checkDir(key, dir string) error {
	switch {
	case dir == "":
		return fmt.Errorf("config: %s: must not be empty", key)
	case strings.IndexByte(dir, 0) >= 0:
		return fmt.Errorf("config: %s: must not contain a NUL byte", key)
	case !filepath.IsAbs(dir):
		return fmt.Errorf("config: %s: %q is not an absolute path", key, dir)
	}
	return nil
}

func checkHostname(h string) error {
	switch {
	case h == "":
		return errors.New("config: hostname: must not be empty")
	case strings.ContainsAny(h, "/\x00"):
		return fmt.Errorf("config: hostname: %q must not contain \"/\" or NUL", h)
	}
	return nil
}

func checkName(path, name string) error {
	key := fmt.Sprintf("names[%q]", path)
	switch {
	case path == "" || !filepath.IsAbs(path):
		return fmt.Errorf("config: %s: database path is not absolute", key)
	case strings.IndexByte(path, 0) >= 0:
		return fmt.Errorf("config: %s: database path must not contain a NUL byte", key)
	case filepath.Clean(path) != path:
		return fmt.Errorf("config: %s: database path is not clean (write %q)", key, filepath.Clean(path))
	case name == "":
		return fmt.Errorf("config: %s: replica name must not be empty", key)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("config: %s: replica name must not contain a NUL byte", key)
	case strings.Trim(name, "/") == "":
		return fmt.Errorf("config: %s: replica name %q must not consist only of \"/\"", key, name)
	}
	return nil
}

func (t Target) validate(key string) error {
	if t.URL == "" {
		return fmt.Errorf("config: %s.url: missing (want file:///ABS/DIR or s3://BUCKET/PREFIX)", key)
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		// url.Error repeats the whole URL; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("config: %s.url: invalid URL: %v", key, err)
	}
	if u.User != nil {
		return fmt.Errorf("config: %s.url: must not contain user information; credentials come from the AWS credential chain", key)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("config: %s.url: must not have a query or fragment", key)
	}
	switch u.Scheme {
	case "file":
		switch {
		case u.Opaque != "":
			return fmt.Errorf("config: %s.url: file URL needs an absolute directory path (file:///ABS/DIR)", key)
		case u.Host != "":
			return fmt.Errorf("config: %s.url: file URL must have an empty host (file:///ABS/DIR), got host %q", key, u.Host)
		case !strings.HasPrefix(u.Path, "/"):
			return fmt.Errorf("config: %s.url: file URL needs an absolute directory path (file:///ABS/DIR)", key)
		case strings.IndexByte(u.Path, 0) >= 0:
			return fmt.Errorf("config: %s.url: path must not contain a NUL byte", key)
		}
		for _, o := range []struct {
			name string
			set  bool
		}{{"endpoint", t.Endpoint != ""}, {"region", t.Region != ""}, {"path_style", t.PathStyle}} {
			if o.set {
				return fmt.Errorf("config: %s.%s: only valid for s3 targets", key, o.name)
			}
		}
	case "s3":
		switch {
		case u.Opaque != "" || u.Host == "":
			return fmt.Errorf("config: %s.url: s3 URL needs a bucket (s3://BUCKET/PREFIX)", key)
		case u.Port() != "" || strings.Contains(u.Host, ":"):
			return fmt.Errorf("config: %s.url: bucket %q must not have a port; give the server in endpoint", key, u.Host)
		}
		if t.Endpoint != "" {
			if err := checkEndpoint(t.Endpoint); err != nil {
				return fmt.Errorf("config: %s.endpoint: %v", key, err)
			}
		}
		if strings.ContainsFunc(t.Region, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("config: %s.region: %q must not contain spaces or control characters", key, t.Region)
		}
	case "":
		return fmt.Errorf("config: %s.url: missing scheme (want file:///ABS/DIR or s3://BUCKET/PREFIX)", key)
	default:
		return fmt.Errorf("config: %s.url: unsupported scheme %q (want file or s3)", key, u.Scheme)
	}
	return nil
}

func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("want an http:// or https:// URL, got scheme %q", u.Scheme)
	case u.User != nil:
		return errors.New("must not contain user information; credentials come from the AWS credential chain")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("missing host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return errors.New("must not have a query or fragment")
	}
	return nil
}
