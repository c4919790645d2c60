package names

import (
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	tests := []struct{ name, wantSuffix string }{
		{"host:/var/lib/app.db", "-host%3A%2Fvar%2Flib%2Fapp.db"},
		{"h:/a b/ü.db", "-h%3A%2Fa%20b%2F%C3%BC.db"},
	}
	for _, tt := range tests {
		k := Key(tt.name)
		if !strings.HasSuffix(k, tt.wantSuffix) || len(k) != 4+len(tt.wantSuffix) || strings.Contains(k, "/") {
			t.Errorf("Key(%q) = %q", tt.name, k)
		}
		back, err := NameFromKey(k)
		if err != nil || back != tt.name {
			t.Errorf("NameFromKey(%q) = %q, %v", k, back, err)
		}
	}
	long := Key("h:/" + strings.Repeat("x", 500))
	if len(long) > 255 {
		t.Errorf("long key has %d bytes", len(long))
	}
	if Key("h:/"+strings.Repeat("x", 500)) == Key("h:/"+strings.Repeat("x", 501)) {
		t.Errorf("shortened keys collide")
	}
}

func TestManifestKey(t *testing.T) {
	k := ManifestKey("abcd-x", 0x1234)
	seq, err := ParseManifestKey(k)
	if err != nil || seq != 0x1234 {
		t.Fatalf("ParseManifestKey(%q) = %d, %v", k, seq, err)
	}
	if ManifestKey("k", 9) > ManifestKey("k", 10) {
		t.Fatalf("manifest keys do not sort by version")
	}
}

func FuzzKey(f *testing.F) {
	f.Add("host:/db")
	f.Add("")
	f.Fuzz(func(t *testing.T, name string) {
		k := Key(name)
		if strings.ContainsAny(k, "/\x00") || len(k) > 255 {
			t.Fatalf("Key(%q) = %q is not a valid path segment", name, k)
		}
		if back, err := NameFromKey(k); err == nil && back != name {
			t.Fatalf("NameFromKey(Key(%q)) = %q", name, back)
		}
	})
}

func FuzzParseManifestKey(f *testing.F) {
	f.Add(ManifestKey("k", 42))
	f.Add("dbs/x/manifests/zz")
	f.Fuzz(func(t *testing.T, key string) {
		seq, err := ParseManifestKey(key)
		if err != nil {
			return
		}
		if again, err := ParseManifestKey(ManifestKey("k", seq)); err != nil || again != seq {
			t.Fatalf("ParseManifestKey(%q) = %d does not round-trip", key, seq)
		}
	})
}
