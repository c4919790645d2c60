package config

import "fmt"

// Pack objects (docs/FORMAT.md, "Packs"): an upload with several new
// chunks sends them in packs of at most pack_bytes.
const (
	DefaultPackBytes = 4 << 20
	MinPackBytes     = 1 << 20
	MaxPackBytes     = 64 << 20
)

// PackBytesOrDefault returns the effective pack_bytes: unset means
// DefaultPackBytes, 0 sends every chunk as its own object.
func (c *Config) PackBytesOrDefault() int {
	if c.PackBytes == nil {
		return DefaultPackBytes
	}
	return *c.PackBytes
}

// validatePackBytes checks pack_bytes: 0, or MinPackBytes..MaxPackBytes.
func (c *Config) validatePackBytes() error {
	if c.PackBytes == nil {
		return nil
	}
	if n := *c.PackBytes; n != 0 && (n < MinPackBytes || n > MaxPackBytes) {
		return fmt.Errorf("config: pack_bytes: %d must be 0 (no packs) or between %d and %d", n, MinPackBytes, MaxPackBytes)
	}
	return nil
}
