package config

import "testing"

// TestPackBytes: pack_bytes defaults to 4 MiB, 0 turns packs off, and
// values outside 1–64 MiB or of another type are refused, naming the key.
func TestPackBytes(t *testing.T) {
	checkIntKey(t, "pack_bytes", (*Config).PackBytesOrDefault, []intKeyCase{
		{`{}`, DefaultPackBytes, ""},
		{`{"pack_bytes": null}`, DefaultPackBytes, ""},
		{`{"pack_bytes": 0}`, 0, ""},
		{`{"pack_bytes": 8388608}`, 8 << 20, ""},
		{`{"pack_bytes": 67108864}`, 64 << 20, ""},
		{`{"pack_bytes": 65536}`, 0, "pack_bytes"},
		{`{"pack_bytes": 67108865}`, 0, "pack_bytes"},
		{`{"pack_bytes": -1}`, 0, "pack_bytes"},
		{`{"pack_bytes": "4MiB"}`, 0, "pack_bytes"},
	})
}
