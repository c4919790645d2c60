// Command verneuilctl is the operator CLI of verneuil: restore replicas
// (latest or at a point in time), capture and upload databases now (sync),
// drain spools (flush, copier), and inspect targets (manifest, list,
// status, verify).
//
// Exit status is 0 on success; otherwise a one-line reason goes to stderr
// and the status is non-zero: 2 for usage errors, 3 when the database has
// no replica, 4 when the target cannot be reached, 1 otherwise. Every
// command accepts --json for machine-readable output and --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

// command is one subcommand. Its run function defines its flags on a
// flag.FlagSet and calls app.parse before doing anything else: asked for
// help, parse returns the flag set, which is how --help, help CMD, the
// generated reference (docs/CLI.md) and shell completion learn the flags.
//
// The standard flag package is enough: parse (flags after positional
// arguments) and help.go (help, reference, completion) are the only
// hand-written parts, about the size of the glue a CLI library would need,
// and a subcommand stays one self-contained file.
type command struct {
	name     string
	usage    string // arguments, after the name
	summary  string
	examples []string // command lines, each optionally followed by "  # comment"
	json     string   // the shape of the --json output
	run      func(ctx context.Context, a *app, args []string) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// app holds what every subcommand shares.
type app struct {
	configSpec string
	logLevel   string
	jsonOut    bool
	stdout     io.Writer
	stderr     io.Writer
	cfg        *config.Config
	log        *slog.Logger
}

// usageError is reported with exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// helpRequest is what parse returns for -h/--help: the command's flags.
type helpRequest struct{ fs *flag.FlagSet }

func (helpRequest) Error() string { return "help requested" }

// Exit statuses (README, CLI reference).
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitNoReplica   = 3 // the database has no replica (or not that version) in the target
	exitUnreachable = 4 // the target could not be reached or read
)

// exitError gives an error its exit status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	fs, showVersion := a.topFlags()
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return exitOK
	case err != nil:
		printUsage(stderr)
		fmt.Fprintln(stderr, "verneuilctl:", err)
		return exitUsage
	case *showVersion:
		return a.exit("version", printVersion(a))
	case fs.NArg() == 0:
		printUsage(stderr)
		return exitUsage
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		return a.exit("help", a.help(ctx, rest))
	}
	cmd := commands[name]
	if cmd == nil {
		fmt.Fprintf(stderr, "verneuilctl: unknown command %q (run verneuilctl help)\n", name)
		return exitUsage
	}
	err = cmd.run(ctx, a, rest)
	var hr helpRequest
	if errors.As(err, &hr) {
		printCommandHelp(stdout, cmd, hr.fs)
		return exitOK
	}
	return a.exit(name, err)
}

// exit reports err (if any) on stderr and returns the exit status.
func (a *app) exit(name string, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(a.stderr, "verneuilctl %s: %s\n", name, oneLine(err))
	var ue usageError
	if errors.As(err, &ue) {
		if cmd := commands[name]; cmd != nil {
			fmt.Fprintf(a.stderr, "usage: verneuilctl %s %s (verneuilctl %s --help)\n", cmd.name, cmd.usage, cmd.name)
		}
		return exitUsage
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// topFlags are the flags accepted before the command: the global ones and
// --version.
func (a *app) topFlags() (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("verneuilctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.globalFlags(fs)
	return fs, fs.Bool("version", false, "print the version of verneuilctl, Go and SQLite")
}

// globalFlagNames are the flags every command accepts (globalFlags).
var globalFlagNames = map[string]bool{"config": true, "log-level": true, "json": true}

// Their defaults are the zero values (help shows those); values already
// parsed before the command name are kept.
func (a *app) globalFlags(fs *flag.FlagSet) {
	spec, level, jsonOut := a.configSpec, a.logLevel, a.jsonOut
	defer func() { a.configSpec, a.logLevel, a.jsonOut = spec, level, jsonOut }()
	fs.StringVar(&a.configSpec, "config", "", "configuration `SPEC`: inline JSON, @FILE or a file path (default $VERNEUIL_CONFIG, else the embedded default)")
	fs.StringVar(&a.logLevel, "log-level", "", "log `LEVEL`: debug, info, warn or error (default from the configuration)")
	fs.BoolVar(&a.jsonOut, "json", false, "print results as JSON on stdout (versions are strings; shapes in the CLI reference), and logs as JSON on stderr")
}

// parse parses a subcommand's flags, allowing flags after positional
// arguments ("restore DB --out FILE"). -h/--help returns a helpRequest.
func (a *app) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	a.globalFlags(fs)
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return nil, helpRequest{fs}
		}
		if err != nil {
			return nil, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if a.logLevel != "" {
		if err := config.CheckLogLevel(a.logLevel); err != nil {
			return nil, usagef("--log-level: %v", err)
		}
	}
	return pos, nil
}

// config loads the configuration once.
func (a *app) config() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	var err error
	if a.configSpec != "" {
		a.cfg, err = config.Load(a.configSpec)
	} else {
		a.cfg, err = config.FromEnv()
	}
	if err != nil {
		return nil, err
	}
	if a.logLevel != "" {
		a.cfg.LogLevel = a.logLevel
	}
	if a.jsonOut {
		a.cfg.LogFormat = "json"
	}
	a.log = replicator.NewLogger(a.cfg)
	return a.cfg, nil
}
