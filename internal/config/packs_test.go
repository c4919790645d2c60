package config

import (
	"strings"
	"testing"
)

// TestPackBytes: pack_bytes defaults to 4 MiB, 0 turns packs off, and
// values outside 1–64 MiB or of another type are refused, naming the key.
func TestPackBytes(t *testing.T) {
	cases := []struct {
		json string
		want int
		err  string
	}{
		{`{}`, DefaultPackBytes, ""},
		{`{"pack_bytes": null}`, DefaultPackBytes, ""},
		{`{"pack_bytes": 0}`, 0, ""},
		{`{"pack_bytes": 8388608}`, 8 << 20, ""},
		{`{"pack_bytes": 67108864}`, 64 << 20, ""},
		{`{"pack_bytes": 65536}`, 0, "pack_bytes"},
		{`{"pack_bytes": 67108865}`, 0, "pack_bytes"},
		{`{"pack_bytes": -1}`, 0, "pack_bytes"},
		{`{"pack_bytes": "4MiB"}`, 0, "pack_bytes"},
	}
	for _, tc := range cases {
		c, err := Parse([]byte(tc.json))
		if err == nil {
			c.ApplyDefaults()
			err = c.Validate()
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error naming %s", tc.json, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.json, err)
			continue
		}
		if got := c.PackBytesOrDefault(); got != tc.want {
			t.Errorf("%s: pack_bytes %d, want %d", tc.json, got, tc.want)
		}
	}
}
