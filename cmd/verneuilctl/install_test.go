package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestMakeInstall: make install puts verneuilctl, libverneuil.so, the C
// header and the completions under DESTDIR/PREFIX, at the paths
// docs/EXTENSION.md and docs/OPERATIONS.md use; the installed verneuilctl
// prints the VERSION it was built with; make uninstall removes them.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds verneuilctl and libverneuil.so (a minute); runs without -short")
	}
	makePath, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make")
	}
	dest, bin := t.TempDir(), t.TempDir()
	makeArgs := []string{"-C", "../..", "DESTDIR=" + dest, "PREFIX=/usr/local", "BIN=" + bin, "VERSION=v9.9.9-test"}
	if out, err := exec.Command(makePath, append(makeArgs, "install")...).CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	files := []string{"/usr/local/bin/verneuilctl", "/usr/local/lib/libverneuil.so", "/usr/local/include/verneuil.h",
		"/usr/local/share/bash-completion/completions/verneuilctl", "/usr/local/share/zsh/site-functions/_verneuilctl"}
	for _, f := range files {
		if fi, err := os.Stat(filepath.Join(dest, f)); err != nil || fi.Size() == 0 {
			t.Errorf("make install: %s: %v", f, err)
		}
	}
	out, err := exec.Command(filepath.Join(dest, files[0]), "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "verneuilctl v9.9.9-test (go") {
		t.Errorf("installed verneuilctl --version: %q %v", out, err)
	}
	for doc, paths := range map[string][]string{
		"../../docs/EXTENSION.md":  {files[1], files[2]},
		"../../docs/OPERATIONS.md": {files[0]},
	} {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if !strings.Contains(string(text), p) {
				t.Errorf("%s does not mention the installed %s", doc, p)
			}
		}
	}
	if out, err := exec.Command(makePath, append(makeArgs, "uninstall")...).CombinedOutput(); err != nil {
		t.Fatalf("make uninstall: %v\n%s", err, out)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dest, f)); err == nil {
			t.Errorf("make uninstall left %s", f)
		}
	}
}

// TestSystemdUnit: the contrib unit runs the copier hardened (dedicated
// user, read-only system, restart policy) and systemd-analyze accepts it.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("../../contrib/verneuil-copier.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nUser=verneuil\n", "\nProtectSystem=strict\n", "\nReadWritePaths=", "\nNoNewPrivileges=yes\n",
		"\nRestart=on-failure\n", "\nExecStart=/usr/local/bin/verneuilctl --log-level info copier ", "\nKillSignal=SIGTERM\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze")
	}
	// verify checks that ExecStart exists: point it at a built binary.
	dir := t.TempDir()
	p := filepath.Join(dir, "verneuil-copier.service")
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/verneuilctl", testutil.Verneuilctl(t))
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", p).CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
