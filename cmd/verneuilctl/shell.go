package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/verneuil-go/verneuil/internal/replicator"
)

func init() {
	register(&command{
		name:    "shell",
		usage:   "(DB [--hostname H] | --manifest M) [--at TIME | --version N] [--target T] [--sqlite3 PATH] [--ext PATH] [SQL...]",
		summary: "open the sqlite3 shell on a read replica (verneuil_snapshot), or run SQL on it and exit",
		examples: []string{
			"verneuilctl shell /srv/app.db",
			"verneuilctl shell web-1:/srv/app.db 'SELECT count(*) FROM t'",
			"verneuilctl shell /srv/app.db --at 2026-11-25T08:00:00Z '.tables'",
		},
		run: runShell,
	})
}

// extName is the loadable extension that provides verneuil_snapshot.
const extName = "libverneuil.so"

func runShell(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("shell", flag.ContinueOnError)
	pick := definePickFlags(fs)
	sqlite3 := fs.String("sqlite3", "", "the sqlite3 shell `PATH` (default: $VERNEUIL_SQLITE3, else sqlite3 in PATH)")
	ext := fs.String("ext", "", "the extension `PATH` (default: $VERNEUIL_EXT, else "+extName+" next to verneuilctl or in ../lib)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	// The database (unless --manifest names the replica), then SQL.
	dbArg, sql := pos, []string(nil)
	if *pick.manifest != "" {
		dbArg, sql = nil, pos
	} else if len(pos) > 1 {
		dbArg, sql = pos[:1], pos[1:]
	}
	if err := pick.check(dbArg); err != nil {
		return err
	}
	shellPath, err := findSqlite3(*sqlite3)
	if err != nil {
		return err
	}
	extPath, err := findExt(*ext)
	if err != nil {
		return err
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	// Check the replica here, for restore's clear errors, and turn --at
	// into the version it names.
	s, err := a.store(ctx, *pick.target)
	if err != nil {
		return err
	}
	m, ref, err := pickManifest(ctx, a, s, dbArg, pick)
	s.Close()
	if err != nil {
		return err
	}
	name := ref.Key
	if *pick.manifest != "" && isRegularFile(*pick.manifest) {
		if name, err = filepath.Abs(*pick.manifest); err != nil {
			return err
		}
	}
	uri := "file:" + uriEscape(name) + "?vfs=" + replicator.SnapshotVFSName
	if *pick.at != "" || *pick.version != 0 {
		uri += fmt.Sprintf("&version=%d", m.Seq)
	}
	// The shell's process reads only: it replicates nothing itself.
	child := *cfg
	off := false
	child.Replicate = &off
	cmdArgs := []string{"-cmd", ".load " + quoteArg(extPath), "-cmd", ".open " + quoteArg(uri), ":memory:"}
	cmd := exec.CommandContext(ctx, shellPath, append(cmdArgs, sql...)...)
	cmd.Env = append(os.Environ(), "VERNEUIL_CONFIG="+string(child.JSON()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, a.stdout, a.stderr
	a.log.Info("shell", "sqlite3", shellPath, "ext", extPath, "uri", uri, "version", m.Seq)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s exited with status %d", shellPath, ee.ExitCode())
		}
		return fmt.Errorf("run %s: %w", shellPath, err)
	}
	return nil
}

// findSqlite3 returns the sqlite3 shell to run: flag, $VERNEUIL_SQLITE3,
// then PATH.
func findSqlite3(flagValue string) (string, error) {
	for _, p := range []string{flagValue, os.Getenv("VERNEUIL_SQLITE3")} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("sqlite3 shell %s: %w", p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("sqlite3")
	if err != nil {
		return "", errors.New("no sqlite3 shell in PATH: install it (Debian: apt-get install sqlite3), or give --sqlite3 PATH")
	}
	return p, nil
}

// findExt returns libverneuil.so: flag, $VERNEUIL_EXT, then beside the
// verneuilctl executable or in ../lib from it (make install's layout).
func findExt(flagValue string) (string, error) {
	for _, p := range []string{flagValue, os.Getenv("VERNEUIL_EXT")} {
		if p == "" {
			continue
		}
		if !isRegularFile(p) {
			return "", fmt.Errorf("extension %s: not a file (build it with make ext)", p)
		}
		return filepath.Abs(p)
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		dir := filepath.Dir(exe)
		for _, p := range []string{filepath.Join(dir, extName), filepath.Join(dir, "..", "lib", extName)} {
			if isRegularFile(p) {
				return filepath.Clean(p), nil
			}
			tried = append(tried, filepath.Clean(p))
		}
	}
	return "", fmt.Errorf("no %s found (looked at %s): build it with make ext, or give --ext PATH or VERNEUIL_EXT",
		extName, strings.Join(tried, ", "))
}

// uriEscape escapes what SQLite's URI parser would decode or cut at.
func uriEscape(s string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(s)
}

// quoteArg quotes a dot-command argument for the sqlite3 shell.
func quoteArg(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
