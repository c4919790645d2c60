//go:build cgo && !verneuil_ext && !verneuil_extern

package sqlite3vfs

// The SQLite symbols the shim calls come from mattn's amalgamation.
import _ "github.com/mattn/go-sqlite3"
