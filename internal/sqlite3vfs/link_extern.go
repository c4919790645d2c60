//go:build cgo && verneuil_extern

package sqlite3vfs

// The host-provided build: shim.c calls SQLite directly (sqlite3.h, like the
// mattn build), but no SQLite is linked into the Go side. The program that
// links the result provides the sqlite3_* symbols. It exists for SQLite's
// TCL test suite: cmd/verneuil-tclhook is built with
//
//	go build -buildmode=c-archive -tags verneuil_extern ./cmd/verneuil-tclhook
//
// and linked into Debian's testfixture, whose amalgamation provides SQLite
// (scripts/sqlite-tcl/run.sh). Any other program built with this tag must
// link an SQLite itself; a normal executable would fail to link.
//
// cgo links a throwaway object (_cgo_.o) to learn the package's dynamic
// imports; the SQLite symbols are undefined there, so tell the linker to
// accept that. The flag only reaches that probe link: a c-archive is not
// linked by the go command, and the final link (the testfixture's) resolves
// the symbols for real.

/*
#cgo LDFLAGS: -Wl,--unresolved-symbols=ignore-all
*/
import "C"
