//go:build cgo && verneuil_ext

package main

// The C API of include/verneuil.h. Every function recovers panics (nothing
// crosses into the host's C stack) and returns SQLite result codes; strings
// handed to C are malloc'd and freed with verneuil_free. Logs go through
// slog.Default, which initExtension points at stderr.

/*
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"unsafe"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

const (
	sqliteOK       = 0
	sqliteError    = 1
	sqliteInternal = 2
	sqliteMisuse   = 21
)

// fail stores msg in *errmsg (when errmsg is not NULL) and returns rc.
func fail(errmsg **C.char, rc C.int, msg string) C.int {
	if errmsg != nil {
		*errmsg = C.CString(msg)
	}
	return rc
}

// recoverTo turns a panic into SQLITE_INTERNAL with a message.
func recoverTo(where string, errmsg **C.char, rc *C.int) {
	if r := recover(); r != nil {
		slog.Error("panic in verneuil C API (recovered)", "where", where, "panic", r, "stack", string(debug.Stack()))
		*rc = fail(errmsg, sqliteInternal, fmt.Sprintf("%s: internal error: %v", where, r))
	}
}

// verneuil_configure sets the configuration used when the extension is
// first loaded, instead of VERNEUIL_CONFIG: inline JSON, "@/path/file.json"
// or a file path; "" means the embedded default; NULL forgets an earlier
// call (VERNEUIL_CONFIG applies again). It parses and validates the
// configuration at once. After a successful load it returns SQLITE_MISUSE.
//
//export verneuil_configure
func verneuil_configure(spec *C.char, errmsg **C.char) (rc C.int) {
	defer recoverTo("verneuil_configure", errmsg, &rc)
	if errmsg != nil {
		*errmsg = nil
	}
	state.mu.Lock()
	defer state.mu.Unlock()
	if len(state.started) > 0 {
		return fail(errmsg, sqliteMisuse, "verneuil_configure: the extension is already loaded; call verneuil_configure before loading it")
	}
	if spec == nil {
		state.configured, state.cfg, state.source = false, nil, ""
		return sqliteOK
	}
	// The default paths and a VERNEUIL_HOME in the configuration's
	// defaults come from the environment as the host has set it.
	if err := syncEnviron(); err != nil {
		return fail(errmsg, sqliteError, "verneuil_configure: "+err.Error())
	}
	cfg, err := config.Load(C.GoString(spec))
	if err != nil {
		return fail(errmsg, sqliteError, "verneuil_configure: "+err.Error())
	}
	state.configured, state.cfg, state.source = true, cfg, "verneuil_configure"
	return sqliteOK
}

// verneuil_flush uploads everything committed to the database at dbPath
// (or, with NULL, everything in the spool directory) and returns when it is
// in every target.
//
//export verneuil_flush
func verneuil_flush(dbPath *C.char, errmsg **C.char) (rc C.int) {
	defer recoverTo("verneuil_flush", errmsg, &rc)
	if errmsg != nil {
		*errmsg = nil
	}
	state.mu.Lock()
	rep := state.rep
	state.mu.Unlock()
	if rep == nil {
		return fail(errmsg, sqliteMisuse, "verneuil_flush: the extension is not loaded (or replication failed to start)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), rep.Config().FlushTimeout.Duration())
	defer cancel()
	var err error
	if dbPath == nil {
		err = rep.Flush(ctx)
	} else {
		err = rep.FlushDB(ctx, C.GoString(dbPath))
	}
	if err != nil {
		return fail(errmsg, sqliteError, "verneuil_flush: "+err.Error())
	}
	return sqliteOK
}

// verneuil_manifest_name returns the key under which the replica of the
// database at dbPath on host hostname (NULL or "": this host) is stored in
// the targets, as verneuilctl manifest-name prints it and PRAGMA
// verneuil_manifest_name returns it; NULL on error.
//
//export verneuil_manifest_name
func verneuil_manifest_name(hostname, dbPath *C.char) (out *C.char) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("panic in verneuil_manifest_name (recovered)", "panic", r, "stack", string(debug.Stack()))
			out = nil
		}
	}()
	if dbPath == nil {
		return nil
	}
	cfg, err := currentConfig()
	if err != nil {
		slog.Error("verneuil_manifest_name", "err", err)
		return nil
	}
	var host string
	if hostname != nil {
		host = C.GoString(hostname)
	}
	_, key, err := replicator.ReplicaName(cfg, C.GoString(dbPath), host)
	if err != nil {
		return nil
	}
	return C.CString(key)
}

// currentConfig is the configuration in force, or the one a load would use.
func currentConfig() (*config.Config, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.rep != nil {
		return state.rep.Config(), nil
	}
	cfg, _, err := loadConfig()
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errors.New("no configuration")
	}
	return cfg, nil
}

// verneuil_free frees a string returned by the C API.
//
//export verneuil_free
func verneuil_free(p unsafe.Pointer) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("panic in verneuil_free (recovered)", "panic", r)
		}
	}()
	C.free(p)
}
