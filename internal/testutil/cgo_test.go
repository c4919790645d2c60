package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// cgoPackages are the only packages allowed to import "C": the VFS shim
// and its trampolines, the loadable extension, and the hook that compiles
// verneuil into SQLite's TCL test harness (docs/TESTING-TCL.md).
var cgoPackages = map[string]bool{
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs":  true,
	"github.com/verneuil-go/verneuil/cmd/verneuil-ext":     true,
	"github.com/verneuil-go/verneuil/cmd/verneuil-tclhook": true,
}

// TestOnlyCgoPackagesImportC: no other package of the module has cgo
// files (with or without the extension's build tag), and every internal
// package builds with CGO_ENABLED=0 (the Makefile vets and tests them so).
func TestOnlyCgoPackagesImportC(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	for _, tags := range []string{"", "verneuil_ext", "verneuil_extern"} {
		cmd := exec.Command(goBin, "list", "-tags", tags, "-f", "{{.ImportPath}} {{len .CgoFiles}}", "github.com/verneuil-go/verneuil/...")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -tags %q: %v", tags, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			pkg, n, _ := strings.Cut(line, " ")
			if n != "0" && !cgoPackages[pkg] {
				t.Errorf("%s has cgo files (tags %q): only %v may import \"C\"", pkg, tags, cgoPackages)
			}
		}
	}
	cmd := exec.Command(goBin, "build", "github.com/verneuil-go/verneuil/internal/...")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("CGO_ENABLED=0 go build ./internal/...: %v\n%s", err, out)
	}
}

// TestExtensionWithoutPrometheus: the Prometheus client is verneuilctl's
// (its copier daemon's metrics); the library and libverneuil.so do not
// link it.
func TestExtensionWithoutPrometheus(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	for _, pkg := range []string{"github.com/verneuil-go/verneuil", "github.com/verneuil-go/verneuil/cmd/verneuil-ext"} {
		cmd := exec.Command(goBin, "list", "-deps", "-tags", "verneuil_ext", pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		if strings.Contains(string(out), "github.com/prometheus/") {
			t.Errorf("%s depends on the Prometheus client", pkg)
		}
	}
}
