package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompletionScriptsParse: both scripts are valid for their shell
// (bash -n, zsh -n) and list every command and its flags.
func TestCompletionScriptsParse(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		t.Run(shell, func(t *testing.T) {
			sh := lookShell(t, shell)
			script, errOut, code := ctlArgs("completion", shell)
			if code != 0 {
				t.Fatalf("completion %s: exit %d: %s", shell, code, errOut)
			}
			f := filepath.Join(t.TempDir(), "completion")
			if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
			for _, want := range []string{"restore", "--if-replica-exists", "gc", "--dry-run", "--keep-last", "--config", "--version"} {
				if !strings.Contains(script, want) {
					t.Errorf("the %s script does not offer %s", shell, want)
				}
			}
		})
	}
}

// TestZshCompletion drives an interactive zsh on a pty (its zpty module):
// a line typed with TAB is completed by the generated function, loaded
// both ways the help suggests (sourced, and as _verneuilctl in $fpath),
// then run through a stub verneuilctl that records its arguments.
func TestZshCompletion(t *testing.T) {
	zsh := lookShell(t, "zsh")
	script, errOut, code := ctlArgs("completion", "zsh")
	if code != 0 {
		t.Fatalf("completion zsh: exit %d: %s", code, errOut)
	}
	lines := []string{"verneuilctl res", "verneuilctl --config x.json restore --if-r", "verneuilctl --js", "verneuilctl gc --dry", "verneuilctl help manifest-n"}
	want := []string{"restore", "--config x.json restore --if-replica-exists", "--json", "gc --dry-run", "help manifest-name"}
	for _, how := range []string{"sourced", "fpath"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			fn := filepath.Join(dir, "fn")
			if err := os.Mkdir(fn, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(fn, "_verneuilctl"), []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			load := "source " + filepath.Join(fn, "_verneuilctl")
			if how == "fpath" {
				load = ":"
			}
			// Only the completion system's own directories (and ours):
			// compinit then starts in a fraction of the time.
			setup := `fpath=(` + fn + ` ${(M)fpath:#*/Completion(|/Base|/Unix|/Zsh)}); autoload -U compinit && compinit -u -D || exit; ` +
				load + `; verneuilctl() { print -r -- "$*" >> ` + dir + `/out; }; : > ` + dir + `/ready`
			driver := `zmodload zsh/zpty || exit 3
zpty z 'zsh -f -i'
zpty -w z ` + shellQuote(setup) + `
for i in {1..600}; do [[ -e ` + dir + `/ready ]] && break; sleep 0.05; done
n=0
for line in ` + strings.Join(quoteAll(lines), " ") + `; do
  zpty -w -n z "$line"$'\t\r'
  n=$((n+1))
  for i in {1..600}; do [[ -e ` + dir + `/out && $(wc -l < ` + dir + `/out) -ge $n ]] && break; sleep 0.05; done
done
zpty -d z
`
			if out, err := exec.Command(zsh, "-f", "-c", driver).CombinedOutput(); err != nil {
				t.Fatalf("zsh driver: %v\n%s", err, out)
			}
			got, err := os.ReadFile(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			if g := strings.Split(strings.TrimSpace(string(got)), "\n"); !slices.Equal(g, want) {
				t.Errorf("completed lines ran as %q, want %q", g, want)
			}
		})
	}
}

// lookShell returns the path of shell; scripts/install-test-hosts.sh
// installs zsh.
func lookShell(t *testing.T, shell string) string {
	t.Helper()
	p, err := exec.LookPath(shell)
	if err != nil {
		t.Skipf("%s is not installed (scripts/install-test-hosts.sh installs it)", shell)
	}
	return p
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = shellQuote(s)
	}
	return out
}
