package config_test

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
)

// isolate points every directory variable at a fresh temporary directory and
// clears VERNEUIL_CONFIG, so that tests do not depend on the caller's setup.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("VERNEUIL_HOME", home)
	t.Setenv("VERNEUIL_CONFIG", "")
	return home
}

func mustParse(t *testing.T, s string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return c
}

func TestDefault(t *testing.T) {
	home := isolate(t)
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate(): %v", err)
	}
	host, _ := os.Hostname()
	checks := []struct {
		name      string
		got, want any
	}{
		{"spool_dir", c.SpoolDir, filepath.Join(home, "spool")},
		{"targets", c.Targets, []config.Target{{URL: "file://" + filepath.Join(home, "store")}}},
		{"cache_dir", c.CacheDir, filepath.Join(home, "cache")},
		{"make_default", c.MakeDefault, false},
		{"chunk_size", c.ChunkSize, 65536},
		{"upload_interval", c.UploadInterval.Duration(), time.Second},
		{"scan_interval", c.ScanInterval.Duration(), 30 * time.Second},
		{"copier_workers", c.CopierWorkers, 4},
		{"rate_limit", c.RateLimit, 1000.0},
		{"rate_burst", c.RateBurst, 1000},
		{"flush_timeout", c.FlushTimeout.Duration(), 10 * time.Minute},
		{"flush_on_close", c.FlushOnClose, false},
		{"hostname", c.Hostname, host},
		{"names", c.Names, map[string]string{}},
		{"log_level", c.LogLevel, "warn"},
		{"log_format", c.LogFormat, "text"},
		{"replicate", c.ReplicateEnabled(), true},
		{"target dir", c.Targets[0].Dir(), filepath.Join(home, "store")},
	}
	for _, tc := range checks {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
	// "{}" is the default configuration.
	if p := mustParse(t, "{}"); !reflect.DeepEqual(p, c) {
		t.Errorf("Parse({}) = %v, want Default() = %v", p, c)
	}
}

func TestDirs(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // Validate creates the fallback data directory
	fallback := filepath.Join(os.TempDir(), "verneuil-"+strconv.Itoa(os.Getuid()))
	tests := []struct {
		name                           string
		home, vhome, xdgData, xdgCache string
		wantData, wantCache            string
	}{
		{"VERNEUIL_HOME wins", tmp + "/h", tmp + "/v", tmp + "/d", tmp + "/c", tmp + "/v", tmp + "/v/cache"},
		{"XDG", tmp + "/h", "", tmp + "/d", tmp + "/c", tmp + "/d/verneuil", tmp + "/c/verneuil"},
		{"relative XDG ignored", tmp + "/h", "", "rel", "rel", tmp + "/h/.local/share/verneuil", tmp + "/h/.cache/verneuil"},
		{"HOME", tmp + "/h", "", "", "", tmp + "/h/.local/share/verneuil", tmp + "/h/.cache/verneuil"},
		{"no HOME", "", "", "", "", fallback, fallback + "/cache"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", tc.home)
			t.Setenv("VERNEUIL_HOME", tc.vhome)
			t.Setenv("XDG_DATA_HOME", tc.xdgData)
			t.Setenv("XDG_CACHE_HOME", tc.xdgCache)
			if got := config.DataDir(); got != tc.wantData {
				t.Errorf("DataDir() = %q, want %q", got, tc.wantData)
			}
			if got := config.CacheDir(); got != tc.wantCache {
				t.Errorf("CacheDir() = %q, want %q", got, tc.wantCache)
			}
			if err := config.Default().Validate(); err != nil {
				t.Errorf("Default().Validate(): %v", err)
			}
		})
	}
}

const fullConfig = `{
  "spool_dir": "/var/spool/verneuil",
  "make_default": true,
  "targets": [
    {"url": "s3://my-bucket/prod/db", "endpoint": "http://127.0.0.1:9000", "region": "us-east-1", "path_style": true},
    {"url": "file:///srv/backup"}
  ],
  "cache_dir": "/var/cache/verneuil",
  "chunk_size": 1048576,
  "upload_interval": "250ms",
  "scan_interval": 10,
  "copier_workers": 16,
  "rate_limit": 12.5,
  "rate_burst": 20,
  "flush_timeout": "2m",
  "flush_on_close": true,
  "hostname": "db-7",
  "names": {"/data/app.db": "app/main"},
  "log_level": "debug",
  "log_format": "json",
  "replicate": false,
  "gc_grace": "6h",
  "max_delta_chain": 64,
  "history_interval": "30s",
  "retention": {"keep_all": "2h", "hourly": "48h", "daily": 864000,
    "databases": {"app/main": {"daily": "8760h"}}},
  "snapshot_refresh_interval": "250ms",
  "snapshot_timeout": 5,
  "snapshot_memory_cache": 16777216,
  "snapshot_disk_cache": -1
}`

func TestParseInline(t *testing.T) {
	isolate(t)
	c := mustParse(t, fullConfig)
	f := false
	history := config.Duration(30 * time.Second)
	want := &config.Config{
		SpoolDir:    "/var/spool/verneuil",
		MakeDefault: true,
		Targets: []config.Target{
			{URL: "s3://my-bucket/prod/db", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", PathStyle: true},
			{URL: "file:///srv/backup"},
		},
		CacheDir:        "/var/cache/verneuil",
		ChunkSize:       1 << 20,
		UploadInterval:  config.Duration(250 * time.Millisecond),
		ScanInterval:    config.Duration(10 * time.Second),
		CopierWorkers:   16,
		RateLimit:       12.5,
		RateBurst:       20,
		FlushTimeout:    config.Duration(2 * time.Minute),
		FlushOnClose:    true,
		Hostname:        "db-7",
		Names:           map[string]string{"/data/app.db": "app/main"},
		LogLevel:        "debug",
		LogFormat:       "json",
		Replicate:       &f,
		GCGrace:         config.Duration(6 * time.Hour),
		MaxDeltaChain:   64,
		HistoryInterval: &history,
		Retention: config.Retention{KeepAll: config.Duration(2 * time.Hour), Hourly: config.Duration(48 * time.Hour),
			Daily:     config.Duration(10 * 24 * time.Hour),
			Databases: map[string]config.RetentionWindows{"app/main": {Daily: config.Duration(365 * 24 * time.Hour)}}},

		SnapshotRefreshInterval: config.Duration(250 * time.Millisecond),
		SnapshotTimeout:         config.Duration(5 * time.Second),
		SnapshotMemoryCache:     16 << 20,
		SnapshotDiskCache:       -1,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Parse:\n%v\nwant:\n%v", c, want)
	}
	if all, h, d := c.Retention.For("app/main"); all != 2*time.Hour || h != 48*time.Hour || d != 365*24*time.Hour {
		t.Errorf("Retention.For(app/main) = %v %v %v", all, h, d)
	}
	if _, _, d := c.Retention.For("other"); d != 10*24*time.Hour {
		t.Errorf("Retention.For(other): daily %v", d)
	}
	if c.ReplicateEnabled() {
		t.Error("ReplicateEnabled() = true with \"replicate\": false")
	}
	s3 := c.Targets[0]
	if s3.Kind() != "s3" || s3.Bucket() != "my-bucket" || s3.Prefix() != "prod/db" || s3.Dir() != "" {
		t.Errorf("s3 target: kind %q bucket %q prefix %q dir %q", s3.Kind(), s3.Bucket(), s3.Prefix(), s3.Dir())
	}
	file := c.Targets[1]
	if file.Kind() != "file" || file.Dir() != "/srv/backup" || file.Bucket() != "" {
		t.Errorf("file target: kind %q dir %q bucket %q", file.Kind(), file.Dir(), file.Bucket())
	}
	if n, ok := c.ReplicaName("/data/./app.db"); !ok || n != "app/main" {
		t.Errorf("ReplicaName = %q, %v", n, ok)
	}

	// The effective configuration prints as JSON that parses back to itself.
	if c.String() != string(c.JSON()) {
		t.Error("String() differs from JSON()")
	}
	if again := mustParse(t, c.String()); !reflect.DeepEqual(again, c) {
		t.Errorf("JSON round trip:\n%v\nwant:\n%v", again, c)
	}
}

func TestParseAccepts(t *testing.T) {
	isolate(t)
	tests := []struct {
		name, in string
		check    func(*config.Config) bool
	}{
		{"BOM and whitespace", "\ufeff \n{}\n\t ", func(c *config.Config) bool { return c.ChunkSize == 65536 }},
		{"null means default", `{"chunk_size": null, "targets": null, "names": null, "replicate": null, "upload_interval": null}`,
			func(c *config.Config) bool {
				return c.ChunkSize == 65536 && len(c.Targets) == 1 && c.ReplicateEnabled()
			}},
		{"zero means default", `{"chunk_size": 0, "rate_limit": 0, "upload_interval": "0s"}`,
			func(c *config.Config) bool {
				return c.ChunkSize == 65536 && c.RateLimit == 1000 && c.UploadInterval == config.DefaultUploadInterval
			}},
		{"integral float", `{"chunk_size": 1.31072e5}`, func(c *config.Config) bool { return c.ChunkSize == 131072 }},
		{"max chunk", `{"chunk_size": 16777216}`, func(c *config.Config) bool { return c.ChunkSize == 16<<20 }},
		{"replicate true", `{"replicate": true}`, func(c *config.Config) bool { return c.ReplicateEnabled() }},
		{"file URL escapes", `{"targets": [{"url": "file:///srv/my%20backups/"}]}`,
			func(c *config.Config) bool { return c.Targets[0].Dir() == "/srv/my backups" }},
		{"s3 bucket root", `{"targets": [{"url": "s3://bucket"}]}`,
			func(c *config.Config) bool { return c.Targets[0].Bucket() == "bucket" && c.Targets[0].Prefix() == "" }},
		{"https endpoint", `{"targets": [{"url": "s3://b/p/", "endpoint": "https://s3.example.com"}]}`,
			func(c *config.Config) bool { return c.Targets[0].Prefix() == "p" }},
		{"scheme case", `{"targets": [{"url": "FILE:///x"}]}`, func(c *config.Config) bool { return c.Targets[0].Dir() == "/x" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if c := mustParse(t, tc.in); !tc.check(c) {
				t.Errorf("unexpected result:\n%v", c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	isolate(t)
	tests := []struct {
		name, in, want string
	}{
		// Document-level problems.
		{"empty", ``, `config: empty configuration`},
		{"blank", " \n ", `config: empty configuration`},
		{"truncated", `{"chunk_size": 1`, `config: invalid JSON: unexpected end of input`},
		{"malformed", "{\n  \"chunk_size\": 1,\n}", `config: invalid JSON at line 3, column 1: invalid character '}'`},
		{"single quotes", `{'a': 1}`, `config: invalid JSON at line 1, column 2`},
		{"trailing object", `{}{}`, `config: unexpected data after the top-level object at line 1, column 3`},
		{"trailing garbage", "{}\nx", `config: unexpected data after the top-level object at line 2, column 1`},
		{"array", `[]`, `config: the configuration must be a JSON object, got a list`},
		{"null", `null`, `config: the configuration must be a JSON object, got null`},
		{"string", `"x"`, `config: the configuration must be a JSON object, got string "x"`},

		// Unknown and duplicate keys.
		{"unknown key", `{"spool_dirr": "/x"}`, `config: unknown key "spool_dirr" (did you mean "spool_dir"?)`},
		{"unknown key no hint", `{"frobnicate": 1}`, `config: unknown key "frobnicate"`},
		{"wrong case", `{"Chunk_Size": 65536}`, `config: unknown key "Chunk_Size" (did you mean "chunk_size"?)`},
		{"unknown target key", `{"targets": [{"url": "s3://b/p"}, {"url": "s3://b/q", "regoin": "x"}]}`,
			`config: unknown key "targets[1].regoin" (did you mean "targets[1].region"?)`},
		{"credentials key", `{"targets": [{"url": "s3://b/p", "access_key_id": "AKIA"}]}`, `config: unknown key "targets[0].access_key_id"`},
		{"duplicate key", `{"chunk_size": 65536, "chunk_size": 131072}`, `config: chunk_size: duplicate key`},
		{"duplicate target key", `{"targets": [{"url": "s3://b/p", "url": "s3://b/q"}]}`, `config: targets[0].url: duplicate key`},
		{"duplicate name", `{"names": {"/a": "x", "/a": "y"}}`, `config: names["/a"]: duplicate key`},

		// Types.
		{"string for int", `{"chunk_size": "65536"}`, `config: chunk_size: expected an integer, got string "65536"`},
		{"fraction for int", `{"copier_workers": 1.5}`, `config: copier_workers: expected an integer, got number 1.5`},
		{"huge int", `{"rate_burst": 1e30}`, `config: rate_burst: expected an integer`},
		{"string for bool", `{"make_default": "yes"}`, `config: make_default: expected true or false, got string "yes"`},
		{"number for replicate", `{"replicate": 0}`, `config: replicate: expected true or false, got number 0`},
		{"number for string", `{"spool_dir": 1}`, `config: spool_dir: expected a string, got number 1`},
		{"string for float", `{"rate_limit": "fast"}`, `config: rate_limit: expected a number, got string "fast"`},
		{"float overflow", `{"rate_limit": 1e400}`, `config: rate_limit: 1e400 is out of range`},
		{"object targets", `{"targets": {"url": "s3://b"}}`, `config: targets: expected a list of targets, got an object`},
		{"string target", `{"targets": ["s3://b/p"]}`, `config: targets[0]: expected an object with a "url", got string "s3://b/p"`},
		{"list names", `{"names": ["x"]}`, `config: names: expected an object mapping database paths to replica names, got a list`},
		{"number name", `{"names": {"/a.db": 1}}`, `config: names["/a.db"]: expected a string, got number 1`},
		{"bool path_style", `{"targets": [{"url": "s3://b", "path_style": "true"}]}`, `config: targets[0].path_style: expected true or false`},

		// Directories.
		{"relative spool", `{"spool_dir": "spool"}`, `config: spool_dir: "spool" is not an absolute path`},
		{"relative cache", `{"cache_dir": "./cache"}`, `config: cache_dir: "./cache" is not an absolute path`},
		{"NUL spool", `{"spool_dir": "/a\u0000b"}`, `config: spool_dir: must not contain a NUL byte`},

		// Targets.
		{"no targets", `{"targets": []}`, `config: targets: at least one target is required`},
		{"missing url", `{"targets": [{"region": "x"}]}`, `config: targets[0].url: missing`},
		{"ftp", `{"targets": [{"url": "file:///x"}, {"url": "ftp://x/y"}]}`, `config: targets[1].url: unsupported scheme "ftp" (want file or s3)`},
		{"no scheme", `{"targets": [{"url": "/srv/backup"}]}`, `config: targets[0].url: missing scheme`},
		{"bad URL", `{"targets": [{"url": "s3://b/%zz"}]}`, `config: targets[0].url: invalid URL: invalid URL escape "%zz"`},
		{"file host", `{"targets": [{"url": "file://srv/backup"}]}`, `config: targets[0].url: file URL must have an empty host (file:///ABS/DIR), got host "srv"`},
		{"file relative", `{"targets": [{"url": "file:backup"}]}`, `config: targets[0].url: file URL needs an absolute directory path`},
		{"file empty path", `{"targets": [{"url": "file://"}]}`, `config: targets[0].url: file URL needs an absolute directory path`},
		{"file query", `{"targets": [{"url": "file:///x?y=1"}]}`, `config: targets[0].url: must not have a query or fragment`},
		{"file endpoint", `{"targets": [{"url": "file:///x", "endpoint": "http://h"}]}`, `config: targets[0].endpoint: only valid for s3 targets`},
		{"file region", `{"targets": [{"url": "file:///x", "region": "eu-west-1"}]}`, `config: targets[0].region: only valid for s3 targets`},
		{"file path_style false", `{"targets": [{"url": "file:///x", "path_style": false}]}`, `config: targets[0].path_style: only valid for s3 targets`},
		{"s3 no bucket", `{"targets": [{"url": "s3:///prefix"}]}`, `config: targets[0].url: s3 URL needs a bucket`},
		{"s3 opaque", `{"targets": [{"url": "s3:bucket"}]}`, `config: targets[0].url: s3 URL needs a bucket`},
		{"s3 port", `{"targets": [{"url": "s3://b:9000/p"}]}`, `config: targets[0].url: bucket "b:9000" must not have a port`},
		{"s3 credentials", `{"targets": [{"url": "s3://AKIA:secret@b/p"}]}`, `config: targets[0].url: must not contain user information`},
		{"endpoint scheme", `{"targets": [{"url": "s3://b", "endpoint": "ftp://h"}]}`, `config: targets[0].endpoint: want an http:// or https:// URL, got scheme "ftp"`},
		{"endpoint bare host", `{"targets": [{"url": "s3://b", "endpoint": "minio:9000"}]}`, `config: targets[0].endpoint: want an http:// or https:// URL`},
		{"endpoint no host", `{"targets": [{"url": "s3://b", "endpoint": "http://"}]}`, `config: targets[0].endpoint: missing host`},
		{"endpoint bad", `{"targets": [{"url": "s3://b", "endpoint": "http://h:port"}]}`, `config: targets[0].endpoint: invalid URL`},
		{"endpoint credentials", `{"targets": [{"url": "s3://b", "endpoint": "http://u:p@h"}]}`, `config: targets[0].endpoint: must not contain user information`},
		{"region space", `{"targets": [{"url": "s3://b", "region": "eu west"}]}`, `config: targets[0].region: "eu west" must not contain spaces`},

		// Tunables.
		{"chunk not power of two", `{"chunk_size": 1000}`, `config: chunk_size: 1000 is not a power of two ≥ 65536`},
		{"chunk power of two too small", `{"chunk_size": 4096}`, `config: chunk_size: 4096 is not a power of two ≥ 65536`},
		{"chunk odd", `{"chunk_size": 196608}`, `config: chunk_size: 196608 is not a power of two ≥ 65536`},
		{"chunk negative", `{"chunk_size": -65536}`, `config: chunk_size: -65536 is not a power of two ≥ 65536`},
		{"chunk too big", `{"chunk_size": 33554432}`, `config: chunk_size: 33554432 exceeds the maximum 16777216 (16 MiB)`},
		{"negative upload_interval", `{"upload_interval": "-1s"}`, `config: upload_interval: -1s must be positive`},
		{"negative scan_interval", `{"scan_interval": -3}`, `config: scan_interval: -3s must be positive`},
		{"bad duration unit", `{"flush_timeout": "1d"}`, `config: flush_timeout: invalid duration "1d"`},
		{"empty duration", `{"flush_timeout": ""}`, `config: flush_timeout: invalid duration ""`},
		{"bool duration", `{"flush_timeout": true}`, `config: flush_timeout: expected a duration such as "1s" or a number of seconds, got true`},
		{"duration overflow", `{"scan_interval": 1e300}`, `config: scan_interval: duration 1e300 seconds is out of range`},
		{"duration underflow", `{"scan_interval": 1e-12}`, `config: scan_interval: duration 1e-12 seconds is shorter than 1ns`},
		{"workers zero after negative", `{"copier_workers": -1}`, `config: copier_workers: -1 is out of range 1..256`},
		{"workers too many", `{"copier_workers": 257}`, `config: copier_workers: 257 is out of range 1..256`},
		{"negative rate", `{"rate_limit": -0.5}`, `config: rate_limit: -0.5 must be a positive number`},
		{"negative burst", `{"rate_burst": -1}`, `config: rate_burst: -1 must be at least 1`},
		{"hostname slash", `{"hostname": "a/b"}`, `config: hostname: "a/b" must not contain "/" or NUL`},
		{"log level", `{"log_level": "verbose"}`, `config: log_level: "verbose" is not one of debug, info, warn, error`},
		{"log level case", `{"log_level": "WARN"}`, `config: log_level: "WARN" is not one of`},
		{"log format", `{"log_format": "xml"}`, `config: log_format: "xml" is not one of text, json`},

		// Names.
		{"name relative key", `{"names": {"app.db": "x"}}`, `config: names["app.db"]: database path is not absolute`},
		{"name empty key", `{"names": {"": "x"}}`, `config: names[""]: database path is not absolute`},
		{"name unclean key", `{"names": {"/data//app.db": "x"}}`, `config: names["/data//app.db"]: database path is not clean (write "/data/app.db")`},
		{"name NUL key", `{"names": {"/a\u0000": "x"}}`, `config: names["/a\x00"]: database path must not contain a NUL byte`},
		{"name empty value", `{"names": {"/a.db": ""}}`, `config: names["/a.db"]: replica name must not be empty`},
		{"name NUL value", `{"names": {"/a.db": "a\u0000b"}}`, `config: names["/a.db"]: replica name must not contain a NUL byte`},
		{"name slash value", `{"names": {"/a.db": "/"}}`, `config: names["/a.db"]: replica name "/" must not consist only of "/"`},
		{"name slashes value", `{"names": {"/a.db": "///"}}`, `config: names["/a.db"]: replica name "///" must not consist only of "/"`},
		{"first bad name in order", `{"names": {"/b.db": "", "/a.db": ""}}`, `config: names["/a.db"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse(%s) succeeded:\n%v", tc.in, c)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Parse(%s) error:\n  %v\nwant prefix:\n  %s", tc.in, err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks a credential: %v", err)
			}
		})
	}
}

func TestDurations(t *testing.T) {
	isolate(t)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{`"1s"`, time.Second},
		{`"250ms"`, 250 * time.Millisecond},
		{`"1m30s"`, 90 * time.Second},
		{`"1h"`, time.Hour},
		{`"100us"`, 100 * time.Microsecond},
		{`1`, time.Second},
		{`0.25`, 250 * time.Millisecond},
		{`0.1`, 100 * time.Millisecond},
		{`1.5e1`, 15 * time.Second},
		{`3600`, time.Hour},
		{`1e-9`, time.Nanosecond},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			c := mustParse(t, `{"upload_interval": `+tc.in+`, "scan_interval": `+tc.in+`, "flush_timeout": `+tc.in+`}`)
			for name, got := range map[string]config.Duration{
				"upload_interval": c.UploadInterval, "scan_interval": c.ScanInterval, "flush_timeout": c.FlushTimeout,
			} {
				if got.Duration() != tc.want {
					t.Errorf("%s = %v, want %v", name, got, tc.want)
				}
			}
			if again := mustParse(t, c.String()); again.UploadInterval != c.UploadInterval {
				t.Errorf("round trip: %v, want %v", again.UploadInterval, c.UploadInterval)
			}
		})
	}
}

func TestNames(t *testing.T) {
	isolate(t)
	c := mustParse(t, `{"names": {"/data/a.db": "a", "/data/b.db": "team/b.db", "/x y/c.db": "c c"}}`)
	want := map[string]string{"/data/a.db": "a", "/data/b.db": "team/b.db", "/x y/c.db": "c c"}
	if !reflect.DeepEqual(c.Names, want) {
		t.Errorf("Names = %v, want %v", c.Names, want)
	}
	if _, ok := c.ReplicaName("/data/z.db"); ok {
		t.Error("ReplicaName found an unnamed database")
	}
	if n, ok := c.ReplicaName("/data/b.db"); !ok || n != "team/b.db" {
		t.Errorf("ReplicaName(/data/b.db) = %q, %v", n, ok)
	}
}

func TestValidateInCode(t *testing.T) {
	isolate(t)
	var c config.Config
	if err := c.Validate(); err == nil {
		t.Fatal("zero Config validated")
	}
	c.Targets = []config.Target{{URL: config.FileURL("/srv/with space#and%")}}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate after ApplyDefaults: %v", err)
	}
	if got := c.Targets[0].Dir(); got != "/srv/with space#and%" {
		t.Errorf("Dir() of FileURL = %q", got)
	}
	if !c.ReplicateEnabled() {
		t.Error("ReplicateEnabled() = false by default")
	}
	c.Replicate = nil
	if !c.ReplicateEnabled() {
		t.Error("ReplicateEnabled() = false with nil Replicate")
	}

	c.RateLimit = math.NaN()
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "config: rate_limit:") {
		t.Errorf("NaN rate_limit: %v", err)
	}
	if s := c.String(); !strings.Contains(s, `"rate_limit": "NaN"`) {
		t.Errorf("String() with NaN rate_limit:\n%s", s)
	}
	c.RateLimit = math.Inf(1)
	if err := c.Validate(); err == nil {
		t.Error("infinite rate_limit validated")
	}

	c = *config.Default()
	c.Targets[0].PathStyle = true
	if err := c.Validate(); err == nil || err.Error() != "config: targets[0].path_style: only valid for s3 targets" {
		t.Errorf("path_style on a file target: %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	home := isolate(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	missing := filepath.Join(dir, "missing.json")
	if err := os.WriteFile(good, []byte(`{"chunk_size": 131072}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"chunk_size": 131072, "colour": "blue"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("unset", func(t *testing.T) {
		os.Unsetenv("VERNEUIL_CONFIG") // restored by t.Setenv in isolate
		c, err := config.FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, config.Default()) || c.SpoolDir != filepath.Join(home, "spool") {
			t.Errorf("FromEnv() with no VERNEUIL_CONFIG = %v", c)
		}
	})

	tests := []struct {
		name, env string
		chunk     int    // expected chunk size on success
		errWant   string // expected error prefix, if any
		errFile   string // the error must also mention this
	}{
		{"empty", "", 65536, "", ""},
		{"blank", "  \n", 65536, "", ""},
		{"inline", `{"chunk_size": 262144}`, 262144, "", ""},
		{"inline padded", ` {"chunk_size": 262144} `, 262144, "", ""},
		{"file", "@" + good, 131072, "", ""},
		{"inline error", `{"chunk_size": 1000}`, 0, `VERNEUIL_CONFIG: config: chunk_size: 1000 is not a power of two`, ""},
		{"malformed", `{"chunk_size": }`, 0, `VERNEUIL_CONFIG: config: invalid JSON at line 1, column 16`, ""},
		{"file error", "@" + bad, 0, `VERNEUIL_CONFIG: ` + bad + `: config: unknown key "colour"`, bad},
		{"missing file", "@" + missing, 0, `VERNEUIL_CONFIG: open ` + missing, missing},
		{"bare @", "@", 0, `VERNEUIL_CONFIG: config: "@" must be followed by a file name`, ""},
		{"path without @", good, 0, `VERNEUIL_CONFIG: config: invalid JSON`, "write @/path/to/config.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VERNEUIL_CONFIG", tc.env)
			c, err := config.FromEnv()
			if tc.errWant == "" {
				if err != nil {
					t.Fatalf("FromEnv(): %v", err)
				}
				if c.ChunkSize != tc.chunk {
					t.Errorf("chunk_size = %d, want %d", c.ChunkSize, tc.chunk)
				}
				return
			}
			if err == nil {
				t.Fatalf("FromEnv() succeeded: %v", c)
			}
			if !strings.HasPrefix(err.Error(), tc.errWant) || !strings.Contains(err.Error(), tc.errFile) {
				t.Errorf("FromEnv() error:\n  %v\nwant prefix %q containing %q", err, tc.errWant, tc.errFile)
			}
		})
	}

	t.Run("missing file is ErrNotExist", func(t *testing.T) {
		t.Setenv("VERNEUIL_CONFIG", "@"+missing)
		if _, err := config.FromEnv(); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %v is not fs.ErrNotExist", err)
		}
	})
}

func TestLoad(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "verneuil.json")
	if err := os.WriteFile(good, []byte(fullConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"log_level": "loud"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// VERNEUIL_CONFIG does not affect Load.
	t.Setenv("VERNEUIL_CONFIG", `{"chunk_size": 1000}`)

	tests := []struct {
		name, spec string
		host       string // expected hostname on success
		errWant    string
	}{
		{"empty", "", "", ""},
		{"inline", `{"hostname": "h1"}`, "h1", ""},
		{"@file", "@" + good, "db-7", ""},
		{"plain path", good, "db-7", ""},
		{"relative path", "verneuil-does-not-exist.json", "", "open verneuil-does-not-exist.json"},
		{"missing @file", "@" + filepath.Join(dir, "nope.json"), "", "open " + filepath.Join(dir, "nope.json")},
		{"bad file", bad, "", bad + `: config: log_level: "loud" is not one of`},
		{"bad inline", `{"hostname": 1}`, "", `config: hostname: expected a string`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(tc.spec)
			if tc.errWant != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.errWant) {
					t.Fatalf("Load(%q) error = %v, want prefix %q", tc.spec, err, tc.errWant)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%q): %v", tc.spec, err)
			}
			want := tc.host
			if want == "" {
				want = config.Default().Hostname
			}
			if c.Hostname != want {
				t.Errorf("hostname = %q, want %q", c.Hostname, want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	d := config.Duration(1500 * time.Millisecond)
	b, err := d.MarshalJSON()
	if err != nil || string(b) != `"1.5s"` {
		t.Errorf("MarshalJSON = %s, %v", b, err)
	}
	if err := d.UnmarshalJSON([]byte("null")); err != nil || d.Duration() != 1500*time.Millisecond {
		t.Errorf("UnmarshalJSON(null) changed %v or failed: %v", d, err)
	}
	if d.String() != "1.5s" {
		t.Errorf("String() = %q", d.String())
	}
}

func FuzzParse(f *testing.F) {
	f.Setenv("VERNEUIL_HOME", f.TempDir())
	f.Add([]byte(`{}`))
	f.Add([]byte(fullConfig))
	f.Add(config.Default().JSON())
	f.Add([]byte(`{"upload_interval": 0.5, "scan_interval": "1m", "flush_timeout": 1e2}`))
	f.Add([]byte(`{"targets": [{"url": "s3://b/p", "endpoint": "https://h:9000", "path_style": true}]}`))
	f.Add([]byte(`{"targets": [{"url": "file:///x", "region": ""}]}`))
	f.Add([]byte(`{"names": {"/a.db": "x", "/b.db": "/"}}`))
	f.Add([]byte(`{"chunk_size": 1.31072e5, "rate_limit": 1e-300, "replicate": null}`))
	f.Add([]byte(`{"spool_dirr": 1}{`))
	f.Add([]byte("\ufeff[1, 2]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error without the config: prefix: %v", err)
			}
			return
		}
		out := c.JSON()
		again, err := config.Parse(out)
		if err != nil {
			t.Fatalf("JSON() does not re-parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed the config:\n%s\nbecame\n%s", out, again.JSON())
		}
	})
}
