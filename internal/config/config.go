// Package config holds verneuil's configuration: the one JSON document shared
// by the Go library, the loadable SQLite extension and verneuilctl.
//
// A configuration is supplied through the VERNEUIL_CONFIG environment variable
// (inline JSON, or "@/path/to/file.json"; see FromEnv) or through verneuilctl's
// --config flag (see Load). With no configuration at all, Default gives a
// local-directory target with the spool under the user's data directory.
//
// Parsing is strict: unknown keys, duplicate keys, values of the wrong type and
// values out of range are errors, and every error names the offending key, as in
//
//	config: unknown key "spool_dirr" (did you mean "spool_dir"?)
//	config: targets[1].url: unsupported scheme "ftp" (want file or s3)
//	config: chunk_size: 1000 is not a power of two ≥ 65536
//
// Credentials never live in the configuration: S3 credentials come only from
// the standard AWS chain (environment, shared profile, instance metadata), and
// URLs carrying user information are rejected.
//
// The package uses the standard library only and builds with CGO_ENABLED=0.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/verneuil-go/verneuil/internal/names"
)

// Default values of the tunables. A zero value in a parsed configuration is
// replaced by the corresponding default.
const (
	DefaultChunkSize      = 64 << 10 // bytes
	MinChunkSize          = 64 << 10 // bytes
	MaxChunkSize          = 16 << 20 // bytes
	DefaultUploadInterval = Duration(time.Second)
	DefaultScanInterval   = Duration(30 * time.Second)
	DefaultCopierWorkers  = 4
	MaxCopierWorkers      = 256
	// DefaultRateLimit is sized for S3, which accepts 3,500 PUTs and 5,500
	// GETs a second per prefix: 1,000 requests a second per process leaves
	// room for several processes per bucket prefix and still lets a bulk
	// load of 1 GiB (16,384 chunks) reach the store in about 16 s instead
	// of 164 s. It bounds what a runaway process can spend: 1,000 PUTs a
	// second cost about $0.005 a second at S3 Standard list prices.
	DefaultRateLimit = 1000.0 // requests per second
	DefaultRateBurst = 1000
	// DefaultFlushTimeout lets a flush of a large change succeed: 10
	// minutes at 16 uploads in flight and ~30 ms a PUT are about 300,000
	// changed chunks (18 GiB of 64 KiB chunks) to one remote target.
	DefaultFlushTimeout  = Duration(10 * time.Minute)
	DefaultLogLevel      = "warn"
	DefaultLogFormat     = "text"
	DefaultGCGrace       = Duration(24 * time.Hour)
	DefaultMaxDeltaChain = 1024
	// DefaultHistoryInterval: a database's history objects
	// (manifests/SEQ) are written at most about this often while it is
	// written continuously, plus its last version (history.go).
	DefaultHistoryInterval = Duration(10 * time.Second)
	MaxHistoryInterval     = Duration(time.Hour)
	MaxMaxDeltaChain       = 1 << 20
	DefaultKeepAll         = Duration(time.Hour)
	DefaultKeepHourly      = Duration(7 * 24 * time.Hour)
	DefaultKeepDaily       = Duration(30 * 24 * time.Hour)

	DefaultSnapshotRefreshInterval = Duration(time.Second)
	DefaultSnapshotTimeout         = Duration(30 * time.Second)
	DefaultSnapshotMemoryCache     = 64 << 20 // bytes
	DefaultSnapshotDiskCache       = 1 << 30  // bytes
)

// EnvConfig is the environment variable read by FromEnv.
const EnvConfig = "VERNEUIL_CONFIG"

// EnvHome, when set, overrides the data directory (see DataDir).
const EnvHome = "VERNEUIL_HOME"

// Target is one blob store that replicas are written to.
type Target struct {
	URL       string `json:"url"`                  // "file:///ABS/DIR" or "s3://BUCKET/PREFIX"
	Endpoint  string `json:"endpoint,omitempty"`   // s3 only
	Region    string `json:"region,omitempty"`     // s3 only
	PathStyle bool   `json:"path_style,omitempty"` // s3 only
}

// Config is the effective configuration. Obtain one with Parse, Load, FromEnv
// or Default; a Config built in code should go through ApplyDefaults and
// Validate before use.
type Config struct {
	SpoolDir       string            `json:"spool_dir"`
	MakeDefault    bool              `json:"make_default"`
	Targets        []Target          `json:"targets"`
	CacheDir       string            `json:"cache_dir"`
	ChunkSize      int               `json:"chunk_size"`      // bytes; power of two, 65536 ≤ x ≤ 16 MiB; default 65536
	UploadInterval Duration          `json:"upload_interval"` // min time between two manifest uploads of one database; default 1s
	ScanInterval   Duration          `json:"scan_interval"`   // background spool scan period; default 30s
	CopierWorkers  int               `json:"copier_workers"`  // default 4, 1..256
	RateLimit      float64           `json:"rate_limit"`      // blob-store requests per second per process; default 1000; 0 < x
	RateBurst      int               `json:"rate_burst"`      // default 1000
	FlushTimeout   Duration          `json:"flush_timeout"`   // default 10m
	FlushOnClose   bool              `json:"flush_on_close"`  // upload synchronously when the last connection to a db closes
	Hostname       string            `json:"hostname"`        // default os.Hostname()
	Names          map[string]string `json:"names"`           // absolute db path → replica name override
	LogLevel       string            `json:"log_level"`       // debug|info|warn|error; default "warn"
	LogFormat      string            `json:"log_format"`      // text|json; default "text"
	Replicate      *bool             `json:"replicate"`       // default true; false registers the VFS without capture
	GCGrace        Duration          `json:"gc_grace"`        // unreferenced chunks younger than this survive verneuilctl gc; default 24h
	MaxDeltaChain  int               `json:"max_delta_chain"` // versions one full manifest serves as delta base, itself included; default 1024; 1: format 1 only
	// HistoryInterval: versions between two history objects are
	// published as latest only (docs/FORMAT.md); default 10s; 0: every
	// version is written to history. Read it with HistoryEvery.
	HistoryInterval *Duration `json:"history_interval"`
	// PackBytes bounds the pack objects that carry an upload's new
	// chunks (packs.go); default 4 MiB; 0: one object per chunk. Read it
	// with PackBytesOrDefault.
	PackBytes  *int      `json:"pack_bytes"`
	GCInterval Duration  `json:"gc_interval"` // verneuilctl copier runs gc this often; 0 (default): never
	Retention  Retention `json:"retention"`   // which versions verneuilctl gc keeps

	// RepackThreshold: a copier re-sends the records a version still
	// references of a pack under this percentage live in a new pack
	// (docs/FORMAT.md, "Repacking"); default 50; 0: never. Read it
	// with RepackThresholdOrDefault.
	RepackThreshold *int `json:"repack_threshold"`

	// The read-replica VFS verneuil_snapshot (README, docs/CONFIG.md).
	SnapshotRefreshInterval Duration `json:"snapshot_refresh_interval"` // min time between two checks of a database's latest version; default 1s
	SnapshotTimeout         Duration `json:"snapshot_timeout"`          // bound of each blob-store request of a replica read; default 30s
	SnapshotMemoryCache     int64    `json:"snapshot_memory_cache"`     // bytes of chunks kept in memory per process; default 64 MiB
	SnapshotDiskCache       int64    `json:"snapshot_disk_cache"`       // bytes of chunks kept in cache_dir (shared by the host's processes); default 1 GiB; -1: none
}

// Retention is the policy verneuilctl gc applies to every database's
// versions (docs/CONFIG.md): every version until it has been superseded for
// KeepAll, then the newest of each hour for versions younger than Hourly
// and of each day for versions younger than Daily; the latest always.
type Retention struct {
	KeepAll Duration `json:"keep_all"` // default 1h
	Hourly  Duration `json:"hourly"`   // default 168h (7 days)
	Daily   Duration `json:"daily"`    // default 720h (30 days)
	// Databases overrides the windows for some databases, by replica
	// name; a window left out (or 0) takes the value above.
	Databases map[string]RetentionWindows `json:"databases,omitempty"`
}

// RetentionWindows are the windows of one database's retention.
type RetentionWindows struct {
	KeepAll Duration `json:"keep_all,omitempty"`
	Hourly  Duration `json:"hourly,omitempty"`
	Daily   Duration `json:"daily,omitempty"`
}

// For returns the windows that apply to the database of replica name.
func (r Retention) For(name string) (keepAll, hourly, daily time.Duration) {
	w := RetentionWindows{r.KeepAll, r.Hourly, r.Daily}
	if o, ok := r.Databases[name]; ok {
		if o.KeepAll > 0 {
			w.KeepAll = o.KeepAll
		}
		if o.Hourly > 0 {
			w.Hourly = o.Hourly
		}
		if o.Daily > 0 {
			w.Daily = o.Daily
		}
	}
	return w.KeepAll.Duration(), w.Hourly.Duration(), w.Daily.Duration()
}

// Duration is a time.Duration that unmarshals from a Go duration string
// ("1s", "250ms", "1m30s") or from a JSON number of seconds (1, 0.25), and
// marshals as a duration string.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.String.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON encodes d as a duration string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts a duration string or a number of seconds. null leaves
// d unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. \"1s\", \"250ms\" or a number of seconds)", s)
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("invalid duration %s (want e.g. \"1s\", \"250ms\" or a number of seconds)", describe(b))
	}
	ns := math.Round(f * 1e9)
	if math.IsNaN(ns) || ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return fmt.Errorf("duration %s seconds is out of range", b)
	}
	if ns == 0 && f != 0 {
		return fmt.Errorf("duration %s seconds is shorter than 1ns", b)
	}
	*d = Duration(int64(ns))
	return nil
}

// Default returns the embedded default configuration: one local-directory
// target at DataDir()/store, the spool at DataDir()/spool, the chunk cache at
// CacheDir(), and the default tunables.
func Default() *Config {
	c := &Config{}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults replaces every zero-valued field of c by its default. It is
// called by Parse before Validate; call it on a Config built in code.
// Targets is defaulted only when nil: an explicit empty list stays empty and
// fails Validate.
func (c *Config) ApplyDefaults() {
	if c.SpoolDir == "" {
		c.SpoolDir = filepath.Join(DataDir(), "spool")
	}
	if c.Targets == nil {
		c.Targets = []Target{{URL: FileURL(filepath.Join(DataDir(), "store"))}}
	}
	if c.CacheDir == "" {
		c.CacheDir = CacheDir()
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.UploadInterval == 0 {
		c.UploadInterval = DefaultUploadInterval
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = DefaultScanInterval
	}
	if c.CopierWorkers == 0 {
		c.CopierWorkers = DefaultCopierWorkers
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst == 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = DefaultFlushTimeout
	}
	if c.Hostname == "" {
		c.Hostname = defaultHostname()
	}
	if c.Names == nil {
		c.Names = map[string]string{}
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.LogFormat == "" {
		c.LogFormat = DefaultLogFormat
	}
	if c.GCGrace == 0 {
		c.GCGrace = DefaultGCGrace
	}
	if c.HistoryInterval == nil {
		d := DefaultHistoryInterval
		c.HistoryInterval = &d
	}
	if c.MaxDeltaChain == 0 {
		c.MaxDeltaChain = DefaultMaxDeltaChain
	}
	if c.Retention.KeepAll == 0 {
		c.Retention.KeepAll = DefaultKeepAll
	}
	if c.Retention.Hourly == 0 {
		c.Retention.Hourly = DefaultKeepHourly
	}
	if c.Retention.Daily == 0 {
		c.Retention.Daily = DefaultKeepDaily
	}
	if c.Replicate == nil {
		t := true
		c.Replicate = &t
	}
	if c.SnapshotRefreshInterval == 0 {
		c.SnapshotRefreshInterval = DefaultSnapshotRefreshInterval
	}
	if c.SnapshotTimeout == 0 {
		c.SnapshotTimeout = DefaultSnapshotTimeout
	}
	if c.SnapshotMemoryCache == 0 {
		c.SnapshotMemoryCache = DefaultSnapshotMemoryCache
	}
	if c.SnapshotDiskCache == 0 {
		c.SnapshotDiskCache = DefaultSnapshotDiskCache
	}
}

func defaultHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, "/\x00") {
		return "localhost"
	}
	return h
}

// ReplicateEnabled reports whether the replicating VFS should capture writes
// (the "replicate" key; true when unset).
func (c *Config) ReplicateEnabled() bool {
	return c.Replicate == nil || *c.Replicate
}

// SlogLevel returns LogLevel as a slog.Level (slog.LevelWarn if unset or
// unknown).
func (c *Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "error":
		return slog.LevelError
	default:
		return slog.LevelWarn
	}
}

// ReplicaName returns the replica name override configured in Names for the
// database at the absolute path dbPath, if any: the key equal to dbPath
// (cleaned), or else a key that designates the same file as SQLite resolves
// paths (names.Override: a key written through a symbolic link, such as
// /var/db/app.db with /var/db -> /srv/db, applies to /srv/db/app.db, the
// file SQLite opens).
func (c *Config) ReplicaName(dbPath string) (string, bool) {
	dbPath = filepath.Clean(dbPath)
	if n, ok := c.Names[dbPath]; ok {
		return n, true
	}
	canon, err := names.Canonical(dbPath)
	if err != nil {
		return "", false
	}
	return names.Override(c.Names, canon)
}

// JSON returns the configuration as indented JSON, in the form Parse accepts.
// The configuration holds no credentials and no environment variables, so
// nothing is redacted.
func (c *Config) JSON() []byte {
	b, err := json.MarshalIndent(c, "", "  ")
	if err == nil {
		return append(b, '\n')
	}
	// The only unencodable value is a non-finite rate_limit, which Validate
	// rejects; show it as a string rather than failing.
	cp := *c
	cp.RateLimit = 0
	b, err = json.MarshalIndent(&cp, "", "  ")
	if err != nil {
		return fmt.Appendf(nil, "{\"error\": %q}\n", err.Error())
	}
	old := []byte("\n  \"rate_limit\": 0,")
	repl := fmt.Appendf(nil, "\n  \"rate_limit\": %q,", fmt.Sprint(c.RateLimit))
	return append(bytes.Replace(b, old, repl, 1), '\n')
}

// String returns the configuration as indented JSON (see JSON).
func (c *Config) String() string { return string(c.JSON()) }

// Kind returns the target's scheme: "file", "s3", or "" if the URL does not
// parse.
func (t Target) Kind() string {
	u, err := url.Parse(t.URL)
	if err != nil {
		return ""
	}
	return u.Scheme
}

// Dir returns the local directory of a file:// target (unescaped and
// cleaned), or "" for other targets.
func (t Target) Dir() string {
	u, err := url.Parse(t.URL)
	if err != nil || u.Scheme != "file" || u.Path == "" {
		return ""
	}
	return filepath.Clean(filepath.FromSlash(u.Path))
}

// Bucket returns the bucket of an s3:// target, or "" for other targets.
func (t Target) Bucket() string {
	u, err := url.Parse(t.URL)
	if err != nil || u.Scheme != "s3" {
		return ""
	}
	return u.Host
}

// Prefix returns the key prefix of an s3:// target, without leading or
// trailing "/" ("" for the bucket root and for other targets).
func (t Target) Prefix() string {
	u, err := url.Parse(t.URL)
	if err != nil || u.Scheme != "s3" {
		return ""
	}
	return strings.Trim(u.Path, "/")
}

// FileURL returns the file:// URL of the absolute directory dir, escaped as
// needed.
func FileURL(dir string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// HistoryEvery returns the effective history_interval: 0 writes every
// version to history; unset means DefaultHistoryInterval. It is capped at
// gc_grace/8: readers of versions without a history object rely on the
// grace period (docs/FORMAT.md, "Retention and garbage collection").
func (c *Config) HistoryEvery() time.Duration {
	d := DefaultHistoryInterval
	if c.HistoryInterval != nil {
		d = *c.HistoryInterval
	}
	if c.GCGrace > 0 {
		d = min(d, c.GCGrace/8)
	}
	return max(d.Duration(), 0)
}
