package config

import (
	"strings"
	"testing"
)

// intKeyCase is a configuration and the value of one integer key it
// gives, or the error it must fail with.
type intKeyCase struct {
	json string
	want int
	err  string
}

// checkIntKey parses, defaults and validates each case and compares the
// key's effective value (get) with the case's; the configuration printed
// must parse back to the same value.
func checkIntKey(t *testing.T, key string, get func(*Config) int, cases []intKeyCase) {
	t.Helper()
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
		if got := get(c); got != tc.want {
			t.Errorf("%s: %s %d, want %d", tc.json, key, got, tc.want)
		}
		back, err := Parse(c.JSON())
		if err != nil {
			t.Fatalf("%s: the printed configuration does not parse: %v", tc.json, err)
		}
		if got := get(back); got != tc.want {
			t.Errorf("%s: printed and parsed back, %s %d, want %d", tc.json, key, got, tc.want)
		}
	}
}

// TestRepackThreshold: repack_threshold defaults to 50 (percent), 0
// turns repacking off, and values outside 0–100 or of another type are
// refused, naming the key; the printed configuration parses back.
func TestRepackThreshold(t *testing.T) {
	checkIntKey(t, "repack_threshold", (*Config).RepackThresholdOrDefault, []intKeyCase{
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
	})
}
