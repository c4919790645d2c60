package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Parse decodes a JSON configuration strictly, applies defaults to the keys
// left out (or set to zero or null) and validates the result.
//
// Unknown keys (at the top level and inside targets and names), duplicate
// keys, keys in the wrong case, values of the wrong type and data after the
// top-level object are errors. Every error starts with "config: " and names
// the key it is about.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	if err := decode(data, c); err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// topKeys lists the top-level keys in documentation order.
var topKeys = []string{
	"spool_dir", "make_default", "targets", "cache_dir", "chunk_size",
	"upload_interval", "scan_interval", "copier_workers", "rate_limit",
	"rate_burst", "flush_timeout", "flush_on_close", "hostname", "names",
	"log_level", "log_format", "replicate", "gc_grace", "gc_interval", "retention", "max_delta_chain", "history_interval", "pack_bytes",
	"repack_threshold",
	"snapshot_refresh_interval",
	"snapshot_timeout", "snapshot_memory_cache", "snapshot_disk_cache",
}

var (
	retentionKeys = []string{"keep_all", "hourly", "daily", "databases"}
	windowKeys    = []string{"keep_all", "hourly", "daily"}
)

var targetKeys = []string{"url", "endpoint", "region", "path_style"}

func decode(data []byte, c *Config) error {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return syntaxError(data, err)
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		line, col := position(data, len(data)-len(rest))
		return fmt.Errorf("config: unexpected data after the top-level object at line %d, column %d", line, col)
	}
	if raw[0] != '{' {
		return fmt.Errorf("config: the configuration must be a JSON object, got %s", describe(raw))
	}
	top := func(k string) string { return k }
	return eachField(raw, "configuration", top, topKeys, func(key, path string, v json.RawMessage) error {
		switch key {
		case "spool_dir":
			return decodeString(path, v, &c.SpoolDir)
		case "make_default":
			return decodeBool(path, v, &c.MakeDefault)
		case "targets":
			return decodeTargets(path, v, &c.Targets)
		case "cache_dir":
			return decodeString(path, v, &c.CacheDir)
		case "chunk_size":
			return decodeInt(path, v, &c.ChunkSize)
		case "upload_interval":
			return decodeDuration(path, v, &c.UploadInterval)
		case "scan_interval":
			return decodeDuration(path, v, &c.ScanInterval)
		case "copier_workers":
			return decodeInt(path, v, &c.CopierWorkers)
		case "rate_limit":
			return decodeFloat(path, v, &c.RateLimit)
		case "rate_burst":
			return decodeInt(path, v, &c.RateBurst)
		case "flush_timeout":
			return decodeDuration(path, v, &c.FlushTimeout)
		case "flush_on_close":
			return decodeBool(path, v, &c.FlushOnClose)
		case "hostname":
			return decodeString(path, v, &c.Hostname)
		case "names":
			return decodeNames(path, v, &c.Names)
		case "log_level":
			return decodeString(path, v, &c.LogLevel)
		case "log_format":
			return decodeString(path, v, &c.LogFormat)
		case "max_delta_chain":
			return decodeInt(path, v, &c.MaxDeltaChain)
		case "pack_bytes":
			if isNull(v) {
				return nil
			}
			n := 0
			if err := decodeInt(path, v, &n); err != nil {
				return err
			}
			c.PackBytes = &n
			return nil
		case "repack_threshold":
			if isNull(v) {
				return nil
			}
			n := 0
			if err := decodeInt(path, v, &n); err != nil {
				return err
			}
			c.RepackThreshold = &n
			return nil
		case "history_interval":
			var d Duration
			if err := decodeDuration(path, v, &d); err != nil {
				return err
			}
			c.HistoryInterval = &d
			return nil
		case "gc_grace":
			return decodeDuration(path, v, &c.GCGrace)
		case "gc_interval":
			return decodeDuration(path, v, &c.GCInterval)
		case "retention":
			return decodeRetention(path, v, &c.Retention)
		case "snapshot_refresh_interval":
			return decodeDuration(path, v, &c.SnapshotRefreshInterval)
		case "snapshot_timeout":
			return decodeDuration(path, v, &c.SnapshotTimeout)
		case "snapshot_memory_cache":
			return decodeInt64(path, v, &c.SnapshotMemoryCache)
		case "snapshot_disk_cache":
			return decodeInt64(path, v, &c.SnapshotDiskCache)
		case "replicate":
			if isNull(v) {
				return nil
			}
			var b bool
			if err := decodeBool(path, v, &b); err != nil {
				return err
			}
			c.Replicate = &b
			return nil
		}
		return fmt.Errorf("config: %s: key not handled", path) // unreachable: eachField checks known keys
	})
}

func decodeTargets(path string, v json.RawMessage, dst *[]Target) error {
	if isNull(v) {
		return nil
	}
	if v[0] != '[' {
		return fmt.Errorf("config: %s: expected a list of targets, got %s", path, describe(v))
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	if _, err := dec.Token(); err != nil { // '['
		return fmt.Errorf("config: %s: %v", path, err)
	}
	targets := []Target{}
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("config: %s: %v", path, err)
		}
		t, err := decodeTarget(fmt.Sprintf("%s[%d]", path, i), raw)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	*dst = targets
	return nil
}

func decodeTarget(path string, v json.RawMessage) (Target, error) {
	var t Target
	if v[0] != '{' {
		return t, fmt.Errorf("config: %s: expected an object with a \"url\", got %s", path, describe(v))
	}
	var s3Only []string
	sub := func(k string) string { return path + "." + k }
	err := eachField(v, path, sub, targetKeys, func(key, path string, v json.RawMessage) error {
		switch key {
		case "url":
			return decodeString(path, v, &t.URL)
		case "endpoint":
			s3Only = append(s3Only, path)
			return decodeString(path, v, &t.Endpoint)
		case "region":
			s3Only = append(s3Only, path)
			return decodeString(path, v, &t.Region)
		case "path_style":
			s3Only = append(s3Only, path)
			return decodeBool(path, v, &t.PathStyle)
		}
		return fmt.Errorf("config: %s: key not handled", path) // unreachable
	})
	if err != nil {
		return t, err
	}
	// Validate can only see non-zero values; reject an s3 option given on a
	// file target even when it is empty or false.
	if len(s3Only) > 0 && t.Kind() == "file" {
		return t, fmt.Errorf("config: %s: only valid for s3 targets", s3Only[0])
	}
	return t, nil
}

func decodeRetention(path string, v json.RawMessage, dst *Retention) error {
	if isNull(v) {
		return nil
	}
	if v[0] != '{' {
		return fmt.Errorf("config: %s: expected an object with keep_all, hourly and daily durations, got %s", path, describe(v))
	}
	sub := func(k string) string { return path + "." + k }
	return eachField(v, path, sub, retentionKeys, func(key, path string, v json.RawMessage) error {
		switch key {
		case "keep_all":
			return decodeDuration(path, v, &dst.KeepAll)
		case "hourly":
			return decodeDuration(path, v, &dst.Hourly)
		case "daily":
			return decodeDuration(path, v, &dst.Daily)
		case "databases":
			return decodeRetentionDatabases(path, v, &dst.Databases)
		}
		return fmt.Errorf("config: %s: key not handled", path)
	})
}

func decodeRetentionDatabases(path string, v json.RawMessage, dst *map[string]RetentionWindows) error {
	if isNull(v) {
		return nil
	}
	if v[0] != '{' {
		return fmt.Errorf("config: %s: expected an object mapping replica names to retention windows, got %s", path, describe(v))
	}
	m := map[string]RetentionWindows{}
	elem := func(k string) string { return fmt.Sprintf("%s[%q]", path, k) }
	err := eachField(v, path, elem, nil, func(name, p string, v json.RawMessage) error {
		if v[0] != '{' {
			return fmt.Errorf("config: %s: expected an object with keep_all, hourly and daily durations, got %s", p, describe(v))
		}
		var w RetentionWindows
		sub := func(k string) string { return p + "." + k }
		err := eachField(v, p, sub, windowKeys, func(key, p string, v json.RawMessage) error {
			switch key {
			case "keep_all":
				return decodeDuration(p, v, &w.KeepAll)
			case "hourly":
				return decodeDuration(p, v, &w.Hourly)
			case "daily":
				return decodeDuration(p, v, &w.Daily)
			}
			return fmt.Errorf("config: %s: key not handled", p)
		})
		m[name] = w
		return err
	})
	if err != nil {
		return err
	}
	*dst = m
	return nil
}

func decodeNames(path string, v json.RawMessage, dst *map[string]string) error {
	if isNull(v) {
		return nil
	}
	if v[0] != '{' {
		return fmt.Errorf("config: %s: expected an object mapping database paths to replica names, got %s", path, describe(v))
	}
	m := map[string]string{}
	elem := func(k string) string { return fmt.Sprintf("%s[%q]", path, k) }
	err := eachField(v, path, elem, nil, func(key, p string, v json.RawMessage) error {
		if v[0] != '"' {
			return fmt.Errorf("config: %s: expected a string, got %s", p, describe(v))
		}
		var s string
		if err := decodeString(p, v, &s); err != nil {
			return err
		}
		m[key] = s
		return nil
	})
	if err != nil {
		return err
	}
	*dst = m
	return nil
}

// eachField calls fn for every member of the JSON object v, in order, with
// the member's key and its path for messages (pathOf(key)). With a non-nil
// known list, keys not in it are errors; duplicate keys always are. where
// names the object itself in messages.
func eachField(v json.RawMessage, where string, pathOf func(string) string, known []string, fn func(key, path string, v json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(v))
	if _, err := dec.Token(); err != nil { // '{'
		return fmt.Errorf("config: %s: %v", where, err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("config: %s: %v", where, err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("config: %s: unexpected %v", where, tok)
		}
		path := pathOf(key)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("config: %s: %v", path, err)
		}
		if known != nil && !slices.Contains(known, key) {
			msg := fmt.Sprintf("config: unknown key %q", path)
			if s := suggest(key, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", pathOf(s))
			}
			return errors.New(msg)
		}
		if seen[key] {
			return fmt.Errorf("config: %s: duplicate key", path)
		}
		seen[key] = true
		if err := fn(key, path, raw); err != nil {
			return err
		}
	}
	return nil
}

func decodeString(path string, v json.RawMessage, dst *string) error {
	if isNull(v) {
		return nil
	}
	if v[0] != '"' {
		return fmt.Errorf("config: %s: expected a string, got %s", path, describe(v))
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("config: %s: %v", path, err)
	}
	return nil
}

func decodeBool(path string, v json.RawMessage, dst *bool) error {
	switch string(v) {
	case "null":
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return fmt.Errorf("config: %s: expected true or false, got %s", path, describe(v))
	}
	return nil
}

func decodeInt(path string, v json.RawMessage, dst *int) error {
	if isNull(v) {
		return nil
	}
	if !isNumber(v) {
		return fmt.Errorf("config: %s: expected an integer, got %s", path, describe(v))
	}
	if n, err := strconv.ParseInt(string(v), 10, 0); err == nil {
		*dst = int(n)
		return nil
	}
	// Accept integral numbers written with a fraction or exponent (65536.0, 6.5536e4).
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 || float64(int(f)) != f {
		return fmt.Errorf("config: %s: expected an integer, got %s", path, describe(v))
	}
	*dst = int(f)
	return nil
}

func decodeInt64(path string, v json.RawMessage, dst *int64) error {
	var n int
	if err := decodeInt(path, v, &n); err != nil {
		return err
	}
	if !isNull(v) {
		*dst = int64(n)
	}
	return nil
}

func decodeFloat(path string, v json.RawMessage, dst *float64) error {
	if isNull(v) {
		return nil
	}
	if !isNumber(v) {
		return fmt.Errorf("config: %s: expected a number, got %s", path, describe(v))
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return fmt.Errorf("config: %s: %s is out of range", path, v)
	}
	*dst = f
	return nil
}

func decodeDuration(path string, v json.RawMessage, dst *Duration) error {
	if isNull(v) {
		return nil
	}
	if v[0] != '"' && !isNumber(v) {
		return fmt.Errorf("config: %s: expected a duration such as \"1s\" or a number of seconds, got %s", path, describe(v))
	}
	if err := dst.UnmarshalJSON(v); err != nil {
		return fmt.Errorf("config: %s: %v", path, err)
	}
	return nil
}

func isNull(v json.RawMessage) bool { return string(v) == "null" }

func isNumber(v json.RawMessage) bool {
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
}

// describe names the JSON type of v for error messages, with short values
// quoted.
func describe(v []byte) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	short := func(kind string) string {
		if len(v) > 40 {
			return kind
		}
		return kind + " " + string(v)
	}
	switch v[0] {
	case '"':
		return short("string")
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return string(v)
	case 'n':
		return "null"
	default:
		return short("number")
	}
}

func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("config: empty configuration (want a JSON object)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("config: invalid JSON: unexpected end of input")
	case errors.As(err, &se):
		line, col := position(data, int(se.Offset)-1) // Offset counts the bad byte
		msg := strings.TrimPrefix(se.Error(), "json: ")
		return fmt.Errorf("config: invalid JSON at line %d, column %d: %s", line, col, msg)
	}
	return fmt.Errorf("config: invalid JSON: %v", err)
}

// position converts the 0-based index of a byte into a 1-based line and
// column (in bytes).
func position(data []byte, i int) (line, col int) {
	i = min(max(i, 0), len(data))
	before := data[:i]
	line = bytes.Count(before, []byte("\n")) + 1
	col = i - bytes.LastIndexByte(before, '\n')
	return line, col
}

// suggest returns the known key closest to key, if it is close enough to be
// a likely typo (or differs only in case).
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return k
		}
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
