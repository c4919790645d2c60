// Package failpoint lets crash tests kill a process at a named stage of a
// commit (while copying chunks, while spooling, while uploading). It is
// driven by the environment, so production code pays one atomic load per
// site:
//
//	VERNEUIL_FAILPOINT=NAME[:N]
//
// makes the process SIGKILL itself the Nth time (default 1st) it reaches
// the site NAME. Names are listed in Names. Race tests can instead make a
// site slow:
//
//	VERNEUIL_FAILPOINT_SLEEP=NAME:DURATION
//
// makes every hit of NAME sleep for DURATION (e.g. "1s"). In-process tests
// arm a sleep with SetSleep instead. Sites in SleepNames only ever sleep:
// they sit where a kill would teach nothing new.
package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Names lists the sites compiled into the library, in commit order.
var Names = []string{
	"capture-before-copy",    // in the commit hook, before copying chunks
	"capture-mid-copy",       // in the commit hook, between two chunk copies
	"build-before-stage",     // building a manifest, before staging chunks
	"build-mid-stage",        // between two staged chunks
	"publish-before-rename",  // manifest written to tmp, not yet renamed
	"publish-before-gc",      // manifest published, unreferenced chunks not yet deleted
	"upload-mid-chunks",      // some chunks uploaded, not the manifest
	"upload-before-latest",   // manifest version uploaded, latest not updated
	"upload-before-record",   // latest updated, upload not yet recorded in the spool
	"upload-before-manifest", // every chunk uploaded, the manifest not yet
}

// SleepNames lists the sites that only sleep (never listed in Names).
var SleepNames = []string{
	"rescan-slice-held", // a sliced rescan holds SHARED on the database, before reading its slice
}

// sleepSpec is an armed sleep: every hit of name sleeps for d.
type sleepSpec struct {
	name string
	d    time.Duration
}

var sleepArmed atomic.Pointer[sleepSpec]

func init() {
	name, d, ok := strings.Cut(os.Getenv("VERNEUIL_FAILPOINT_SLEEP"), ":")
	if v, err := time.ParseDuration(d); ok && err == nil && v > 0 {
		sleepArmed.Store(&sleepSpec{name: name, d: v})
	}
}

// SetSleep makes every hit of name sleep for d (d <= 0 disarms), in this
// process, until the returned function restores the previous setting.
func SetSleep(name string, d time.Duration) (restore func()) {
	var next *sleepSpec
	if d > 0 {
		next = &sleepSpec{name: name, d: d}
	}
	prev := sleepArmed.Swap(next)
	return func() { sleepArmed.Store(prev) }
}

var (
	armed     atomic.Bool
	target    string
	remaining atomic.Int64
)

func init() {
	spec := os.Getenv("VERNEUIL_FAILPOINT")
	if spec == "" {
		return
	}
	name, n := spec, int64(1)
	if i := strings.LastIndexByte(spec, ':'); i >= 0 {
		if v, err := strconv.ParseInt(spec[i+1:], 10, 64); err == nil && v > 0 {
			name, n = spec[:i], v
		}
	}
	target = name
	remaining.Store(n)
	armed.Store(true)
}

// Hit kills the process with SIGKILL if the failpoint name is armed and
// this is the chosen hit.
func Hit(name string) {
	if sp := sleepArmed.Load(); sp != nil && name == sp.name {
		time.Sleep(sp.d)
	}
	if !armed.Load() || name != target {
		return
	}
	if remaining.Add(-1) == 0 {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}
