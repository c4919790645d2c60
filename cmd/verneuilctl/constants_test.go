package main

import (
	"os"
	"regexp"
	"testing"
)

// TestVersionXattrMatchesShim: status and sync read the version xattr that
// the C shim writes (shimint.h): the names must agree.
func TestVersionXattrMatchesShim(t *testing.T) {
	src, err := os.ReadFile("../../internal/sqlite3vfs/shimint.h")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`#define VSHIM_XATTR_NAME "([^"]+)"`).FindSubmatch(src)
	if m == nil || string(m[1]) != versionXattr {
		t.Fatalf("shimint.h names the version xattr %q, verneuilctl reads %q", m, versionXattr)
	}
}
