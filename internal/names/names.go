// Package names owns how replicated databases and their objects are named:
// the replica name of a database (hostname and canonical path, or a configured
// name), its escaped key segment, and the object keys of chunks and
// manifests in a target. docs/FORMAT.md documents the layout.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Replica returns the replica name of the database at path on host:
// "HOST:PATH". path must be absolute and clean.
func Replica(host, path string) string { return host + ":" + path }

// Hostname returns the configured host name, or the system's.
func Hostname(configured string) string {
	if configured != "" {
		return configured
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// Key returns the single key segment for a replica name: four hex digits of
// its SHA-256 (to spread databases over store partitions), a dash, and the
// name with every byte outside [A-Za-z0-9._~-] percent-escaped (so '/' never
// appears and the segment is a valid file name).
func Key(name string) string {
	sum := sha256.Sum256([]byte(name))
	var b strings.Builder
	b.WriteString(hex.EncodeToString(sum[:2]))
	b.WriteByte('-')
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	key := b.String()
	if len(key) > 240 {
		// File systems limit names to 255 bytes: keep both ends and a hash
		// of the whole name in the middle, between "%~" markers (a "%"
		// followed by something other than two hex digits never occurs in
		// an unshortened key). Cuts never split a %XX escape.
		full := sha256.Sum256([]byte(key))
		head := 100
		for i := head - 2; i < head; i++ {
			if key[i] == '%' {
				head = i
				break
			}
		}
		tail := len(key) - 100
		for i := tail - 2; i < tail; i++ {
			if key[i] == '%' {
				tail = i + 3
				break
			}
		}
		key = key[:head] + "%~" + hex.EncodeToString(full[:16]) + "%~" + key[tail:]
	}
	return key
}

// NameFromKey recovers the replica name from a key segment, when the key was
// not shortened.
func NameFromKey(key string) (string, error) {
	i := strings.IndexByte(key, '-')
	if i != 4 {
		return "", fmt.Errorf("database key %q: missing hash prefix", key)
	}
	if strings.Contains(key, "%~") {
		return "", fmt.Errorf("database key %q: shortened, the name is not recoverable", key)
	}
	name, err := url.PathUnescape(key[i+1:])
	if err != nil {
		return "", fmt.Errorf("database key %q: %w", key, err)
	}
	if Key(name) != key {
		return "", fmt.Errorf("database key %q: shortened or not canonical", key)
	}
	return name, nil
}

// ChunkKey is the object key of a chunk in a target.
func ChunkKey(hexHash string) string { return "chunks/" + hexHash }

// PackKey is the object key of a pack (several chunk records in one
// object, named by the SHA-256 of its bytes) in a target.
func PackKey(hexHash string) string { return "packs/" + hexHash }

// DBPrefix is the prefix of every object of one database.
func DBPrefix(key string) string { return "dbs/" + key + "/" }

// LatestKey is the object holding a copy of the newest manifest.
func LatestKey(key string) string { return DBPrefix(key) + "latest" }

// ManifestsPrefix is the prefix of a database's immutable manifests.
func ManifestsPrefix(key string) string { return DBPrefix(key) + "manifests/" }

// ManifestKey is the immutable object of one version. Sequence numbers are
// zero-padded hex so keys sort by version.
func ManifestKey(key string, seq uint64) string {
	return fmt.Sprintf("%s%016x", ManifestsPrefix(key), seq)
}

// ParseManifestKey returns the sequence number encoded in a manifest key.
func ParseManifestKey(objectKey string) (uint64, error) {
	i := strings.LastIndexByte(objectKey, '/')
	seq, err := strconv.ParseUint(objectKey[i+1:], 16, 64)
	if err != nil {
		return 0, fmt.Errorf("manifest key %q: %w", objectKey, err)
	}
	return seq, nil
}
