package spool_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// spoolNames are the file and directory names of a spool.
var spoolNames = []string{
	spool.DBsDirName, spool.InfoFile, spool.ManifestFile, spool.UploadedFile,
	spool.UploadedTargetsFile, spool.ChunksDir, spool.RescanFile, spool.LockFile,
	spool.UploadLockFile, spool.TmpDir, spool.SpareFile, spool.LastErrorFile,
	spool.RescanMarker,
}

// literalPathElements returns "file:line: literal" for every string
// literal equal to one of names passed to filepath.Join or path.Join in
// the non-test Go files under root, outside the directories in skip.
func literalPathElements(t *testing.T, root string, names []string, skip ...string) []string {
	t.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var found []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			for _, s := range skip {
				if path == s {
					return filepath.SkipDir
				}
			}
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Join" {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || (x.Name != "filepath" && x.Name != "path") {
				return true
			}
			for _, arg := range call.Args {
				if lit, ok := arg.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if v, _ := strconv.Unquote(lit.Value); want[v] {
						found = append(found, fset.Position(lit.Pos()).String()+": "+lit.Value)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestSpoolNamesAreConstants: outside this package, code builds spool
// paths from the constants, not from string literals that would drift.
func TestSpoolNamesAreConstants(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, f := range literalPathElements(t, root, spoolNames, filepath.Join(root, "internal", "spool")) {
		t.Errorf("%s: a spool name spelled as a literal (use the internal/spool constant)", f)
	}
}

// TestLiteralPathElementsFinds: the scan reports a literal spool name in a
// Join and ignores other literals and test files.
func TestLiteralPathElementsFinds(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.go", "package a\nimport \"path/filepath\"\nvar p = filepath.Join(\"x\", \"tmp\", \"other\")\n")
	write("a_test.go", "package a\nimport \"path/filepath\"\nvar q = filepath.Join(\"x\", \"uploaded\")\n")
	got := literalPathElements(t, dir, spoolNames)
	if len(got) != 1 || !strings.HasSuffix(got[0], `a.go:3:28: "tmp"`) {
		t.Errorf("found %q, want the one \"tmp\" of a.go", got)
	}
}
