package config

import (
	"strings"
	"testing"
)

// TestRepackThreshold: repack_threshold defaults to 50 (percent), 0
// turns repacking off, and values outside 0–100 or of another type are
// refused, naming the key; the printed configuration parses back.
func TestRepackThreshold(t *testing.T) {
	cases := []struct {
		json string
		want int
		err  string
	}{
		{`{}`, DefaultRepackThreshold, ""},
		{`{"repack_threshold": null}`, DefaultRepackThreshold, ""},
		{`{"repack_threshold": 0}`, 0, ""},
		{`{"repack_threshold": 25}`, 25, ""},
		{`{"repack_threshold": 100}`, 100, ""},
		{`{"repack_threshold": 101}`, 0, "repack_threshold"},
		{`{"repack_threshold": -1}`, 0, "repack_threshold"},
		{`{"repack_threshold": 0.5}`, 0, "repack_threshold"},
		{`{"repack_threshold": "50%"}`, 0, "repack_threshold"},
		{`{"repack_treshold": 50}`, 0, `did you mean "repack_threshold"`},
	}
	for _, tc := range cases {
		c, err := Parse([]byte(tc.json))
		if err == nil {
			c.ApplyDefaults()
			err = c.Validate()
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error with %s", tc.json, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.json, err)
			continue
		}
		if got := c.RepackThresholdOrDefault(); got != tc.want {
			t.Errorf("%s: repack_threshold %d, want %d", tc.json, got, tc.want)
		}
		back, err := Parse(c.JSON())
		if err != nil {
			t.Fatalf("%s: the printed configuration does not parse: %v", tc.json, err)
		}
		if got := back.RepackThresholdOrDefault(); got != tc.want {
			t.Errorf("%s: printed and parsed back, repack_threshold %d, want %d", tc.json, got, tc.want)
		}
	}
}
