package verneuil_test

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

// internalMentions returns, for the package in dir, every exported
// declaration (as go doc shows it: exported fields and methods, no bodies)
// that names an identifier of an internal package.
func internalMentions(t *testing.T, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	internal := map[string]string{} // local import name → path
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.Contains("/"+path+"/", "/internal/") {
				continue
			}
			local := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				local = imp.Name.Name
			}
			internal[local] = path
		}
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	pkg, err := doc.NewFromFiles(fset, files, "example.com/checked")
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	check := func(what string, node ast.Node) {
		if node == nil {
			return
		}
		ast.Inspect(node, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok {
				if path, ok := internal[x.Name]; ok {
					var b strings.Builder
					printer.Fprint(&b, fset, node)
					bad = append(bad, what+" mentions "+path+"."+sel.Sel.Name+":\n"+b.String())
				}
			}
			return true
		})
	}
	values := func(vs []*doc.Value) {
		for _, v := range vs {
			check(strings.Join(v.Names, ", "), v.Decl)
		}
	}
	funcs := func(fs []*doc.Func) {
		for _, f := range fs {
			check(f.Name, f.Decl)
		}
	}
	values(pkg.Consts)
	values(pkg.Vars)
	funcs(pkg.Funcs)
	for _, typ := range pkg.Types {
		check(typ.Name, typ.Decl)
		values(typ.Consts)
		values(typ.Vars)
		funcs(typ.Funcs)
		funcs(typ.Methods)
	}
	return bad
}

// TestPublicAPINamesNoInternalPackage: what go doc shows of the root
// package (exported constants, variables, functions, types, their exported
// fields and methods) names only the package's own types and public
// packages, so that an application can name everything it is given.
func TestPublicAPINamesNoInternalPackage(t *testing.T) {
	for _, b := range internalMentions(t, ".") {
		t.Error(b)
	}
}

// TestInternalMentionsFindsLeaks: the check above reports an exported
// type alias, a field, a parameter, a result and a constant's value that
// name an internal package, and not what go doc hides.
func TestInternalMentionsFindsLeaks(t *testing.T) {
	dir := t.TempDir()
	src := `package leaky

import (
	"context"

	"example.com/m/internal/config"
	cp "example.com/m/internal/copier"
)

type Alias = config.Config

type Public struct {
	Stats cp.Snapshot
	hidden config.Config
}

type Opaque struct{ c *config.Config }

func Open(ctx context.Context, c *config.Config) error { return nil }

func Stats() cp.Snapshot { var s cp.Snapshot; return s }

func (o *Opaque) Fine() error { _ = config.Config{}; return nil }

func unexported(c config.Config) {}

const Name = config.Name
`
	if err := os.WriteFile(filepath.Join(dir, "leaky.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got := internalMentions(t, dir)
	var whats []string
	for _, b := range got {
		whats = append(whats, b[:strings.Index(b, " mentions ")])
	}
	want := []string{"Name", "Open", "Stats", "Alias", "Public"}
	if strings.Join(whats, ",") != strings.Join(want, ",") {
		t.Errorf("reported %q, want %q:\n%s", whats, want, strings.Join(got, "\n"))
	}
}

// TestVFSNamesMatchTheWiring: the public VFS names are literals (so that go
// doc shows them); they are the names the wiring registers.
func TestVFSNamesMatchTheWiring(t *testing.T) {
	if verneuil.VFSName != replicator.VFSName || verneuil.SnapshotVFSName != replicator.SnapshotVFSName {
		t.Errorf("public VFS names %q, %q; registered %q, %q", verneuil.VFSName, verneuil.SnapshotVFSName, replicator.VFSName, replicator.SnapshotVFSName)
	}
}
