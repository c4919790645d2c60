package sqlite3vfs

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// MinSQLiteVersionNumber is the oldest SQLite (as sqlite3_libversion_number)
// that the loadable extension accepts: Debian 12's 3.40. The shim calls no
// SQLite API newer than that. It equals VERNEUIL_MIN_SQLITE_VERSION_NUMBER
// in ext.h, which the C entry point checks.
const MinSQLiteVersionNumber = 3040000

// MinSQLiteVersion is MinSQLiteVersionNumber as a version string.
const MinSQLiteVersion = "3.40.0"

// SQLiteVersionString formats an sqlite3_libversion_number value such as
// 3040001 as "3.40.1".
func SQLiteVersionString(n int) string {
	return fmt.Sprintf("%d.%d.%d", n/1000000, n/1000%1000, n%1000)
}

var extInit atomic.Pointer[func() error]

// SetExtensionInit installs the function that the extension's entry point
// sqlite3_verneuil_init calls (through Go) each time the library is loaded
// into a connection. It is set by the extension's main package
// (cmd/verneuil-ext) in its init, which lets the entry point live here, next
// to the shim, without this package importing the root package. f must be
// idempotent: it returns nil at once when everything is already registered.
// It must register every VFS of the extension, and return an error naming
// the problem otherwise (the message reaches the host, e.g. the sqlite3
// shell's ".load").
func SetExtensionInit(f func() error) {
	if f == nil {
		extInit.Store(nil)
		return
	}
	extInit.Store(&f)
}

func runExtensionInit() error {
	f := extInit.Load()
	if f == nil {
		return errors.New("verneuil: this library has no extension initialiser (build it from ./cmd/verneuil-ext with scripts/build-ext.sh)")
	}
	return (*f)()
}
