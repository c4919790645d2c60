package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const (
	driverModule = "github.com/mattn/go-sqlite3"
	ourModule    = "github.com/verneuil-go/verneuil"
)

// moduleRoot returns the directory of the verneuil module containing dir
// (the one whose go.mod declares ourModule).
func moduleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePath(data) == ourModule {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside the %s module (no go.mod declaring it above it): run from the repository", dir, ourModule)
		}
	}
}

// modulePath and goDirective read the module and go lines of a go.mod.
func modulePath(gomod []byte) string  { return goModLine(gomod, "module") }
func goDirective(gomod []byte) string { return goModLine(gomod, "go") }

func goModLine(gomod []byte, verb string) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == verb {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// goCmd runs the go command (gobin) in dir with extra environment
// variables and returns its standard output.
func goCmd(gobin, dir string, env []string, args ...string) (string, error) {
	return command(gobin, dir, env, args...)
}

// command runs a program in dir with extra environment variables and
// returns its standard output; an error carries its standard error.
func command(bin, dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// workspaceGoflags drops -mod flags from GOFLAGS: the copy is built in
// workspace mode, where -mod=mod (set by some environments for the
// repository's own builds) is an error.
func workspaceGoflags(goflags string) string {
	var keep []string
	for _, f := range strings.Fields(goflags) {
		if f == "-mod" || strings.HasPrefix(f, "-mod=") || f == "--mod" || strings.HasPrefix(f, "--mod=") {
			continue
		}
		keep = append(keep, f)
	}
	return strings.Join(keep, " ")
}

// locateDriver returns the directory and version of the driver module the
// verneuil module at root requires (downloading it through the module
// proxy when the module cache lacks it).
func locateDriver(gobin, root string) (dir, version string, err error) {
	query := func() (string, string, error) {
		out, err := goCmd(gobin, root, []string{"GOWORK=off"}, "list", "-m", "-f", "{{.Dir}}\t{{.Version}}", driverModule)
		if err != nil {
			return "", "", err
		}
		d, v, _ := strings.Cut(out, "\t")
		return d, v, nil
	}
	if dir, version, err = query(); err != nil {
		return "", "", err
	}
	if dir == "" {
		if _, err := goCmd(gobin, root, []string{"GOWORK=off"}, "mod", "download", driverModule); err != nil {
			return "", "", err
		}
		if dir, version, err = query(); err != nil {
			return "", "", err
		}
	}
	if dir == "" {
		return "", "", fmt.Errorf("%s %s: not in the module cache after go mod download", driverModule, version)
	}
	return dir, version, nil
}

// workLockFile is the file in the work directory whose flock one run holds.
const workLockFile = "lock"

// lockWork takes an exclusive lock on work/lock for the whole run, so that
// two runs do not rebuild and clear each other's directories.
func lockWork(work string) (*os.File, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(work, workLockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another mattn-suite run (choose another -work)", work)
		}
		return nil, fmt.Errorf("lock %s: %w", work, err)
	}
	return f, nil
}

// prepareSource replaces dst with a writable copy of the driver's package
// (the files at the top of src; its subdirectories are examples and tools
// that the tests do not use), adds the harness as harnessName, and writes
// the go.work beside dst that makes the copy and the verneuil module at
// root one workspace. dst must be a fixed path: cgo's build cache keys on
// the package directory, and a new directory costs a full rebuild of the
// SQLite amalgamation (minutes).
func prepareSource(src, dst, root string, harness []byte) (gowork string, err error) {
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", src, err)
	}
	copied := 0
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if e.Name() == harnessName {
			return "", fmt.Errorf("%s already has a file named %s", src, harnessName)
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return "", err
		}
		copied++
	}
	if _, err := os.Stat(filepath.Join(dst, "go.mod")); err != nil {
		return "", fmt.Errorf("%s is not a Go module (no go.mod among its %d files)", src, copied)
	}
	if err := os.WriteFile(filepath.Join(dst, harnessName), harness, 0o644); err != nil {
		return "", err
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	gover := goDirective(gomod)
	if gover == "" {
		return "", fmt.Errorf("%s/go.mod has no go directive", root)
	}
	gowork = filepath.Join(filepath.Dir(dst), "go.work")
	if err := os.WriteFile(gowork, []byte(goWork(gover, dst, root)), 0o644); err != nil {
		return "", err
	}
	return gowork, nil
}

// goWork is a go.work file using the module directories dirs; they are
// quoted, as a checkout path may hold spaces.
func goWork(gover string, dirs ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "go %s\n\nuse (\n", gover)
	for _, d := range dirs {
		fmt.Fprintf(&b, "\t%s\n", strconv.Quote(d))
	}
	b.WriteString(")\n")
	return b.String()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
