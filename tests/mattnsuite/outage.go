package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// catchUp ends the outage of the verneuil pass's target: the suite ran
// with its file:// directory missing, so every commit stayed in the spool
// and the harness's final flush failed. It checks that nothing reached
// the target, creates it, and runs verneuilctl flush with the pass's
// configuration, as an operator would after the outage: the replicas
// checked next must then be those of the suite's databases.
func catchUp(gobin, root string, vern *pass) []string {
	store := filepath.Join(vern.dir, "store")
	if _, err := os.Stat(store); !errors.Is(err, fs.ErrNotExist) {
		return []string{fmt.Sprintf("outage: the target %s exists after the suite (%v)", store, err)}
	}
	if err := os.Mkdir(store, 0o700); err != nil {
		return []string{"outage: " + err.Error()}
	}
	first, _, _ := strings.Cut(vern.report.FlushError, "\n")
	logf("outage: the harness's final flush failed as it should (%d databases; the first: %s)",
		strings.Count(vern.report.FlushError, "\n")+1, shorten(first, 300))
	return drainSpool(gobin, root, vern, true)
}

// drainSpool runs verneuilctl flush (built from this checkout) with the
// verneuil pass's configuration, as a later process would; with
// requireUpload, it must have uploaded something.
func drainSpool(gobin, root string, vern *pass, requireUpload bool) []string {
	ctl := filepath.Join(filepath.Dir(vern.dir), "verneuilctl")
	if _, err := goCmd(gobin, root, []string{"GOWORK=off"}, "build", "-o", ctl, "./cmd/verneuilctl"); err != nil {
		return []string{"build verneuilctl: " + err.Error()}
	}
	out, err := command(ctl, vern.dir, []string{"VERNEUIL_CONFIG=" + vern.config()}, "flush", "--json")
	if err != nil {
		return []string{"verneuilctl flush: " + err.Error()}
	}
	var res struct {
		Databases int   `json:"databases"`
		Manifests int64 `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return []string{fmt.Sprintf("verneuilctl flush printed %q: %v", out, err)}
	}
	logf("verneuilctl flush uploaded %d databases, %d manifests", res.Databases, res.Manifests)
	if requireUpload && res.Manifests == 0 {
		return []string{"verneuilctl flush uploaded no manifest"}
	}
	return nil
}

// shorten cuts s to at most n bytes, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
