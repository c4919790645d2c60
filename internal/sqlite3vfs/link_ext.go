//go:build cgo && verneuil_ext

package sqlite3vfs

// The extension build: shim.c and ext.c are compiled against sqlite3ext.h,
// every SQLite call goes through the host's sqlite3_api, and ext.c provides
// the entry point sqlite3_verneuil_init. Build the library with
// scripts/build-ext.sh (go build -buildmode=c-shared -tags verneuil_ext
// ./cmd/verneuil-ext).

/*
#cgo CFLAGS: -DVERNEUIL_EXTENSION
#include <stdlib.h>
*/
import "C"

import (
	"fmt"
	"runtime/debug"
)

// verneuilGoExtInit runs the initialiser installed with SetExtensionInit.
// On failure it stores a malloc'd message in *errOut (freed by ext.c).
//
//export verneuilGoExtInit
func verneuilGoExtInit(errOut **C.char) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			logger().Error("panic in verneuil extension init (recovered)", "panic", r, "stack", string(debug.Stack()))
			*errOut = C.CString(fmt.Sprintf("verneuil: internal error during initialisation: %v", r))
			rc = sqliteInternal
		}
	}()
	if err := runExtensionInit(); err != nil {
		*errOut = C.CString(err.Error())
		return sqliteError
	}
	return sqliteOK
}
