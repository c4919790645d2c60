package sqlite3vfs

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The C entry point (ext.c) checks the constants of ext.h; the Go constants
// and the public header include/verneuil.h document them and must agree.
func TestMinSQLiteVersionMatchesExtH(t *testing.T) {
	src, err := os.ReadFile("ext.h")
	if err != nil {
		t.Fatal(err)
	}
	num := regexp.MustCompile(`#define VERNEUIL_MIN_SQLITE_VERSION_NUMBER (\d+)`).FindSubmatch(src)
	str := regexp.MustCompile(`#define VERNEUIL_MIN_SQLITE_VERSION +"([0-9.]+)"`).FindSubmatch(src)
	if num == nil || str == nil {
		t.Fatalf("ext.h lacks the VERNEUIL_MIN_SQLITE_VERSION defines:\n%s", src)
	}
	if string(num[1]) != "3040000" || MinSQLiteVersionNumber != 3040000 {
		t.Errorf("minimum version: ext.h %s, Go %d; both must be 3040000 (Debian 12's SQLite 3.40)", num[1], MinSQLiteVersionNumber)
	}
	hdr, err := os.ReadFile("../../include/verneuil.h")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`#define VERNEUIL_MIN_SQLITE_VERSION_NUMBER 3040000\b`).Match(hdr) {
		t.Errorf("include/verneuil.h does not define VERNEUIL_MIN_SQLITE_VERSION_NUMBER 3040000")
	}
	if string(str[1]) != MinSQLiteVersion || SQLiteVersionString(MinSQLiteVersionNumber) != MinSQLiteVersion {
		t.Errorf("minimum version string: ext.h %q, Go %q, formatted %q", str[1], MinSQLiteVersion, SQLiteVersionString(MinSQLiteVersionNumber))
	}
}

func TestSQLiteVersionString(t *testing.T) {
	for _, c := range []struct {
		n      int
		want   string
		accept bool
	}{
		{3008011, "3.8.11", false},
		{3039004, "3.39.4", false},
		{3040000, "3.40.0", true},
		{3040001, "3.40.1", true}, // Debian 12
		{3054001, "3.54.1", true}, // the vendored headers
	} {
		if got := SQLiteVersionString(c.n); got != c.want {
			t.Errorf("SQLiteVersionString(%d) = %q, want %q", c.n, got, c.want)
		}
		if ok := c.n >= MinSQLiteVersionNumber; ok != c.accept {
			t.Errorf("SQLite %s: accepted=%v, want %v", c.want, ok, c.accept)
		}
	}
}

func TestExtensionInitUnset(t *testing.T) {
	old := extInit.Load()
	defer extInit.Store(old)
	SetExtensionInit(nil)
	if err := runExtensionInit(); err == nil || !strings.Contains(err.Error(), "cmd/verneuil-ext") {
		t.Fatalf("runExtensionInit without initialiser: %v", err)
	}
	calls := 0
	SetExtensionInit(func() error { calls++; return nil })
	if err := runExtensionInit(); err != nil || calls != 1 {
		t.Fatalf("runExtensionInit: err=%v calls=%d", err, calls)
	}
}
