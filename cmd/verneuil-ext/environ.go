//go:build cgo && verneuil_ext

package main

/*
#include <stdlib.h>

extern char **environ;

// verneuil_environ returns C's environ (NULL-terminated, possibly NULL).
static char **verneuil_environ(void){ return environ; }
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"
)

// syncEnviron makes Go's view of the environment (os.Getenv, and through it
// the configuration, the data directory and the AWS SDK's credential chain)
// equal to C's environ as it is now.
//
// The Go runtime of a shared library copies the environment the process
// started with, once: a host that sets a variable before loading the
// extension (Python's os.environ["VERNEUIL_CONFIG"] = ..., C's setenv) would
// otherwise be ignored. Only variables whose values differ are set (which
// also calls C's setenv, with the value C already has) and only variables
// that C no longer has are unset (C's unsetenv is then a no-op), so C's
// environment keeps its values. Like any reader of environ, this races with
// a host thread calling setenv at the same time; hosts set their variables
// before loading the extension.
//
// It is called, under state.mu, before each configuration is loaded, until
// the extension is running.
func syncEnviron() error {
	cenv := map[string]string{}
	for p := C.verneuil_environ(); p != nil && *p != nil; p = (**C.char)(unsafe.Add(unsafe.Pointer(p), unsafe.Sizeof(*p))) {
		k, v, ok := strings.Cut(C.GoString(*p), "=")
		if !ok || k == "" {
			continue
		}
		if _, dup := cenv[k]; !dup { // getenv returns the first
			cenv[k] = v
		}
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := cenv[k]; !ok && k != "" {
			if err := os.Unsetenv(k); err != nil {
				return fmt.Errorf("environment: unset %s: %w", k, err)
			}
		}
	}
	for k, v := range cenv {
		if cur, ok := os.LookupEnv(k); ok && cur == v {
			continue
		}
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("environment: set %s: %w", k, err)
		}
	}
	return nil
}
