package config

import "fmt"

// Repacking (docs/FORMAT.md, "Repacking"): a copier re-sends the records
// that the version it publishes references of a pack holding less than
// repack_threshold percent of them in a new pack.
const DefaultRepackThreshold = 50

// RepackThresholdOrDefault returns the effective repack_threshold, a
// percentage: unset means DefaultRepackThreshold, 0 never repacks.
func (c *Config) RepackThresholdOrDefault() int {
	if c.RepackThreshold == nil {
		return DefaultRepackThreshold
	}
	return *c.RepackThreshold
}

// validateRepackThreshold checks repack_threshold: 0 to 100.
func (c *Config) validateRepackThreshold() error {
	if c.RepackThreshold == nil {
		return nil
	}
	if n := *c.RepackThreshold; n < 0 || n > 100 {
		return fmt.Errorf("config: repack_threshold: %d must be a percentage from 0 (never repack) to 100", n)
	}
	return nil
}
