package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
	}
}

func TestModuleRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(wd, "..", ".."); root != filepath.Clean(want) {
		t.Fatalf("moduleRoot = %s, want %s", root, want)
	}

	// Another module (the driver's copy, a user's project) is not ours.
	other := t.TempDir()
	writeFiles(t, other, map[string]string{"go.mod": "module example.com/other\n\ngo 1.21\n"})
	if _, err := moduleRoot(filepath.Join(other)); err == nil || !strings.Contains(err.Error(), "run from the repository") {
		t.Fatalf("moduleRoot(other module) = %v, want an error", err)
	}
}

func TestGoModLines(t *testing.T) {
	gomod := []byte("// comment\nmodule \"github.com/x/y\"\n\ngo 1.26.0\n\ntoolchain go1.26.1\nrequire (\n\tgo 1.0\n)\n")
	if got := modulePath(gomod); got != "github.com/x/y" {
		t.Errorf("modulePath = %q", got)
	}
	if got := goDirective(gomod); got != "1.26.0" {
		t.Errorf("goDirective = %q", got)
	}
	if got := goDirective([]byte("module m\n")); got != "" {
		t.Errorf("goDirective without a go line = %q", got)
	}
}

func TestPrepareSource(t *testing.T) {
	dir := t.TempDir()
	mod, root, dst := filepath.Join(dir, "modcache"), filepath.Join(dir, "my repo"), filepath.Join(dir, "work", "src")
	writeFiles(t, mod, map[string]string{
		"go.mod":             "module github.com/mattn/go-sqlite3\n\ngo 1.21\n",
		"sqlite3.go":         "package sqlite3\n",
		"sqlite3_test.go":    "package sqlite3\n",
		"_example/x/main.go": "package main\n",
		"upgrade/upgrade.go": "package main\n",
	})
	writeFiles(t, root, map[string]string{"go.mod": "module github.com/verneuil-go/verneuil\n\ngo 1.26.0\n"})
	// A stale file from an earlier run (an older driver version, an edit).
	writeFiles(t, dst, map[string]string{"stale_test.go": "package sqlite3\n"})

	gowork, err := prepareSource(mod, dst, root, []byte("package sqlite3_test\n"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o200 == 0 {
			t.Errorf("%s is not writable: %v", e.Name(), fi.Mode())
		}
	}
	if want := "go.mod sqlite3.go sqlite3_test.go " + harnessName; strings.Join(got, " ") != want {
		t.Errorf("copy holds %q, want %q", got, want)
	}
	work, err := os.ReadFile(gowork)
	if err != nil {
		t.Fatal(err)
	}
	if want := "go 1.26.0\n\nuse (\n\t\"" + dst + "\"\n\t\"" + root + "\"\n)\n"; string(work) != want {
		t.Errorf("go.work = %q, want %q", work, want)
	}
}

func TestPrepareSourceRefuses(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{name: "not a module", files: map[string]string{"a.go": "package a\n"}, want: "not a Go module"},
		{name: "harness name taken", files: map[string]string{"go.mod": "module m\n", harnessName: "package x\n"}, want: "already has a file named"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mod, root := filepath.Join(dir, "mod"), filepath.Join(dir, "repo")
			writeFiles(t, mod, tc.files)
			writeFiles(t, root, map[string]string{"go.mod": "module github.com/verneuil-go/verneuil\n\ngo 1.26.0\n"})
			_, err := prepareSource(mod, filepath.Join(dir, "work", "src"), root, []byte("package sqlite3_test\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := prepareSource(filepath.Join(t.TempDir(), "missing"), filepath.Join(t.TempDir(), "src"), ".", nil); err == nil {
		t.Fatal("a missing module directory was accepted")
	}
}

func TestLockWork(t *testing.T) {
	work := filepath.Join(t.TempDir(), "work")
	first, err := lockWork(work)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockWork(work); err == nil || !strings.Contains(err.Error(), "in use by another mattn-suite run") {
		t.Fatalf("second lock: %v", err)
	}
	first.Close()
	again, err := lockWork(work)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Close()
}

func TestWorkspaceGoflags(t *testing.T) {
	tests := map[string]string{
		"":                        "",
		"-mod=mod":                "",
		"-mod=vendor -trimpath":   "-trimpath",
		"-race -mod=readonly -v":  "-race -v",
		"--mod=mod -tags=x":       "-tags=x",
		"-modfile=x.mod -count=1": "-modfile=x.mod -count=1",
	}
	for in, want := range tests {
		if got := workspaceGoflags(in); got != want {
			t.Errorf("workspaceGoflags(%q) = %q, want %q", in, got, want)
		}
	}
}
