package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// DataDir returns verneuil's data directory, under which the default spool
// ("spool") and the default local target ("store") live:
//
//   - $VERNEUIL_HOME if set (made absolute);
//   - else $XDG_DATA_HOME/verneuil if XDG_DATA_HOME is an absolute path;
//   - else ~/.local/share/verneuil;
//   - else, when HOME is unset, os.TempDir()/verneuil-<uid> (/tmp when
//     TMPDIR is not an absolute path). That name is
//     predictable, in a directory every user can write: Validate creates it
//     private (0700) and refuses a configuration that uses it when it is a
//     symbolic link, not owned by the current user, or writable by group or
//     others (another user could have planted it).
func DataDir() string {
	if h := os.Getenv(EnvHome); h != "" {
		return absPath(h)
	}
	if x := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "verneuil")
	}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		return filepath.Join(home, ".local", "share", "verneuil")
	}
	return tempHome()
}

// CacheDir returns the default chunk-cache directory:
//
//   - $VERNEUIL_HOME/cache if VERNEUIL_HOME is set (so that one variable
//     isolates all of verneuil's local state);
//   - else $XDG_CACHE_HOME/verneuil if XDG_CACHE_HOME is an absolute path;
//   - else ~/.cache/verneuil;
//   - else, when HOME is unset, os.TempDir()/verneuil-<uid>/cache.
func CacheDir() string {
	if h := os.Getenv(EnvHome); h != "" {
		return filepath.Join(absPath(h), "cache")
	}
	if x := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "verneuil")
	}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		return filepath.Join(home, ".cache", "verneuil")
	}
	return filepath.Join(tempHome(), "cache")
}

func tempHome() string {
	tmp := os.TempDir()
	if !filepath.IsAbs(tmp) {
		// A relative TMPDIR would put the spool and the store in each
		// process's working directory: ignored, like a relative
		// XDG_DATA_HOME.
		tmp = "/tmp"
	}
	return filepath.Join(tmp, fmt.Sprintf("verneuil-%d", os.Getuid()))
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// euid returns the user that must own verneuil's directories (a variable so
// that tests can pretend to be another user).
var euid = os.Geteuid

// CheckOwnedDir returns an error naming dir unless it is a directory (not a
// symbolic link to one) owned by the current user and not writable by
// others, or owned by root and writable by neither group nor others. Spool and local-target roots go
// through it: a directory another local user controls could be swapped or
// read under us.
func CheckOwnedDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err // *fs.PathError names dir
	}
	return checkOwned(dir, fi, false)
}

// checkOwned is CheckOwnedDir on dir's Lstat result; private also refuses a
// directory writable by group or others.
func checkOwned(dir string, fi fs.FileInfo, private bool) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link: refusing it (give the real directory)", dir)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", dir)
	}
	uid, me := int(st.Uid), euid()
	writable := fi.Mode().Perm()&0o022 != 0
	switch {
	case uid != me && uid != 0:
		return fmt.Errorf("%s is owned by uid %d, not by the current user (uid %d): refusing it "+
			"(another user could swap or read what is in it); run as its owner (sudo -u %s ...) "+
			"or use a directory of your own", dir, uid, me, sudoUser(uid))
	case uid != me && writable:
		return fmt.Errorf("%s is owned by root and writable by group or others (mode %v): refusing it", dir, fi.Mode().Perm())
	case fi.Mode().Perm()&0o002 != 0:
		// Another user could create the subdirectories first (dbs/,
		// chunks/) and read what is written into them.
		return fmt.Errorf("%s is writable by others (mode %v): refusing it (chmod o-w %s)", dir, fi.Mode().Perm(), dir)
	case private && writable:
		return fmt.Errorf("%s is writable by group or others (mode %v): refusing it", dir, fi.Mode().Perm())
	}
	return nil
}

// sudoUser names the user uid for sudo -u: its login name, else "#UID".
func sudoUser(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return u.Username
	}
	return fmt.Sprintf("'#%d'", uid)
}

// checkTempHome secures the fallback data directory TMPDIR/verneuil-UID when
// one of c's local directories (spool, cache, file targets) lies in it: it
// creates it with mode 0700 if missing, then refuses it unless it is a real
// directory owned by the current user and writable by nobody else.
func (c *Config) checkTempHome() error {
	home := tempHome()
	dirs := []string{c.SpoolDir, c.CacheDir}
	for _, t := range c.Targets {
		if d := t.Dir(); d != "" {
			dirs = append(dirs, d)
		}
	}
	if !slices.ContainsFunc(dirs, func(d string) bool {
		return d == home || strings.HasPrefix(d, home+string(filepath.Separator))
	}) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(home), 0o700); err != nil {
		return fmt.Errorf("config: data directory %s: %w", home, err)
	}
	if err := os.Mkdir(home, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("config: data directory %s: %w", home, err)
	}
	fi, err := os.Lstat(home)
	if err != nil {
		return fmt.Errorf("config: data directory: %w", err)
	}
	if err := checkOwned(home, fi, true); err != nil {
		return fmt.Errorf("config: data directory (HOME is unset): %w", err)
	}
	return nil
}
