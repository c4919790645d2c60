package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// version is the release of verneuilctl, set at link time
// (-ldflags "-X main.version=v1.2.3"); otherwise the build information
// says (the module version, or the VCS revision of a development build).
var version string

func init() {
	register(&command{
		name:     "version",
		usage:    "",
		summary:  "print the version of verneuilctl, of Go and of the SQLite it links",
		examples: []string{"verneuilctl version", "verneuilctl --version"},
		json:     `{"version": "v1.2.3", "go": "go1.26.0", "sqlite": "3.46.1"}`,
		run: func(ctx context.Context, a *app, args []string) error {
			fs := flag.NewFlagSet("version", flag.ContinueOnError)
			pos, err := a.parse(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 0 {
				return usagef("version takes no arguments")
			}
			return printVersion(a)
		},
	})
	register(&command{
		name:    "completion",
		usage:   "bash|zsh",
		summary: "print a shell completion script (commands and flags) for bash or zsh",
		examples: []string{
			"source <(verneuilctl completion bash)  # in ~/.bashrc",
			"verneuilctl completion zsh > \"${fpath[1]}/_verneuilctl\"",
		},
		run: runCompletion,
	})
}

// buildVersion returns the version of this build.
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(len(rev), 12)] + modified
}

func printVersion(a *app) error {
	sqliteVersion, _, _ := sqlite3.Version()
	if a.jsonOut {
		return a.printJSON(map[string]string{"version": buildVersion(), "go": runtime.Version(), "sqlite": sqliteVersion})
	}
	_, err := fmt.Fprintf(a.stdout, "verneuilctl %s (%s, SQLite %s)\n", buildVersion(), runtime.Version(), sqliteVersion)
	return err
}

// sortedCommands returns the commands by name.
func sortedCommands() []*command {
	cmds := make([]*command, 0, len(commands))
	for _, c := range commands {
		cmds = append(cmds, c)
	}
	slices.SortFunc(cmds, func(x, y *command) int { return strings.Compare(x.name, y.name) })
	return cmds
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: verneuilctl [--config SPEC] [--log-level L] [--json] COMMAND [ARGS]")
	fmt.Fprintln(w, "       verneuilctl help COMMAND | COMMAND --help    (flags, examples, JSON output)")
	fmt.Fprintln(w, "       verneuilctl --version")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range sortedCommands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nexit status: 0 success, 1 failure, 2 usage error, 3 no replica of the database, 4 target unreachable")
}

// help runs "verneuilctl help [COMMAND]" (and "help --reference", which
// prints docs/CLI.md).
func (a *app) help(ctx context.Context, args []string) error {
	switch {
	case len(args) == 0 || len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help"):
		printUsage(a.stdout)
		return nil
	case len(args) == 1 && args[0] == "--reference":
		return printReference(ctx, a.stdout)
	case len(args) > 1:
		return usagef("help takes one command name")
	}
	cmd := commands[args[0]]
	if cmd == nil {
		return usagef("unknown command %q", args[0])
	}
	fs, err := flagsOf(ctx, cmd)
	if err != nil {
		return err
	}
	printCommandHelp(a.stdout, cmd, fs)
	return nil
}

// flagsOf returns the flags of cmd: its run function, asked for help,
// returns them before doing anything else.
func flagsOf(ctx context.Context, cmd *command) (*flag.FlagSet, error) {
	a := &app{stdout: io.Discard, stderr: io.Discard}
	err := cmd.run(ctx, a, []string{"--help"})
	var hr helpRequest
	if !errors.As(err, &hr) {
		return nil, fmt.Errorf("command %s does not parse its flags first (got %v)", cmd.name, err)
	}
	return hr.fs, nil
}

// flagLine returns "--name ARG" for a flag.
func flagLine(f *flag.Flag) string {
	arg, _ := flag.UnquoteUsage(f)
	if arg == "" {
		return "--" + f.Name
	}
	return "--" + f.Name + " " + arg
}

// flagUsage returns a flag's description with its default.
func flagUsage(f *flag.Flag) string {
	_, usage := flag.UnquoteUsage(f)
	if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "0s" {
		usage += fmt.Sprintf(" (default %s)", d)
	}
	return usage
}

// splitFlags returns a command's own flags and the global ones.
func splitFlags(fs *flag.FlagSet) (own, global []*flag.Flag) {
	fs.VisitAll(func(f *flag.Flag) {
		if globalFlagNames[f.Name] {
			global = append(global, f)
		} else {
			own = append(own, f)
		}
	})
	return own, global
}

func printCommandHelp(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "verneuilctl %s: %s\n\nusage: verneuilctl %s %s\n", cmd.name, cmd.summary, cmd.name, cmd.usage)
	own, global := splitFlags(fs)
	for _, group := range []struct {
		title string
		flags []*flag.Flag
	}{{"flags", own}, {"global flags", global}} {
		if len(group.flags) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", group.title)
		for _, f := range group.flags {
			fmt.Fprintf(w, "  %s\n        %s\n", flagLine(f), flagUsage(f))
		}
	}
	if cmd.json != "" {
		fmt.Fprintf(w, "\nJSON output (--json):\n  %s\n", strings.ReplaceAll(cmd.json, "\n", "\n  "))
	}
	if len(cmd.examples) > 0 {
		fmt.Fprintln(w, "\nexamples:")
		for _, e := range cmd.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

// printReference prints the Markdown CLI reference (docs/CLI.md) from the
// commands' definitions.
func printReference(ctx context.Context, w io.Writer) error {
	fmt.Fprint(w, "# verneuilctl reference\n\n"+
		"Generated from the flag definitions by `verneuilctl help --reference`\n"+
		"(`make docs`); `verneuilctl COMMAND --help` prints the same. Flags may come\n"+
		"before or after positional arguments; `--flag value` and `--flag=value`\n"+
		"are equivalent.\n\n"+
		"## Exit status\n\n"+
		"| status | meaning |\n|---|---|\n"+
		"| 0 | success |\n| 1 | failure (the reason is one line on stderr) |\n"+
		"| 2 | usage error (bad flag, missing or conflicting arguments) |\n"+
		"| 3 | no replica: the database (or the version asked for) is not in the target |\n"+
		"| 4 | the target could not be reached or read (network, credentials, missing bucket or directory) |\n\n"+
		"## Versions and times\n\n"+
		"A version is a decimal number, printed the same way in text and JSON\n"+
		"(where it is a string: it exceeds 2^53, which JSON tools that read numbers\n"+
		"as doubles would round) and accepted as such by `--version`. Times are\n"+
		"RFC 3339 with a zone (`2026-01-02T15:04:05.123Z`); every time printed is\n"+
		"accepted back by `--at`.\n\n"+
		"## Databases\n\n"+
		"Wherever a command takes a database (`DB`), it accepts a local path, the\n"+
		"name `list` prints (`HOST:/path`, or a configured name) and a replica key\n"+
		"(`manifest-name` prints it).\n\n")
	fs := flag.NewFlagSet("verneuilctl", flag.ContinueOnError)
	(&app{}).globalFlags(fs)
	fmt.Fprint(w, "## Global flags\n\n")
	writeFlagTable(w, fs, func(f *flag.Flag) bool { return true })
	for _, cmd := range sortedCommands() {
		cfs, err := flagsOf(ctx, cmd)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n## %s\n\n%s.\n\n```\nverneuilctl %s %s\n```\n", cmd.name, upperFirst(cmd.summary), cmd.name, cmd.usage)
		own, _ := splitFlags(cfs)
		if len(own) > 0 {
			fmt.Fprintln(w)
			writeFlagTable(w, cfs, func(f *flag.Flag) bool { return !globalFlagNames[f.Name] })
		}
		if cmd.json != "" {
			fmt.Fprintf(w, "\nJSON output (`--json`):\n\n```json\n%s\n```\n", cmd.json)
		}
		if len(cmd.examples) > 0 {
			fmt.Fprintf(w, "\nExamples:\n\n```sh\n%s\n```\n", strings.Join(cmd.examples, "\n"))
		}
	}
	return nil
}

func writeFlagTable(w io.Writer, fs *flag.FlagSet, keep func(*flag.Flag) bool) {
	fmt.Fprint(w, "| flag | description |\n|---|---|\n")
	fs.VisitAll(func(f *flag.Flag) {
		if keep(f) {
			fmt.Fprintf(w, "| `%s` | %s |\n", flagLine(f), strings.ReplaceAll(flagUsage(f), "|", `\|`))
		}
	})
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
