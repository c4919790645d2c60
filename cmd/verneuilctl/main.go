// Command verneuilctl is the operator CLI of verneuil: restore replicas
// (latest or at a point in time), capture and upload databases now (sync),
// drain spools (flush, copier), and inspect targets (manifest, list,
// status, verify).
//
// Exit status is 0 on success; otherwise a one-line reason goes to stderr
// and the status is non-zero (2 for usage errors). Data commands accept
// --json for machine-readable output.
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
	"sort"
	"strings"
	"syscall"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/config"
)

// command is one subcommand.
type command struct {
	name    string
	usage   string // arguments, after the name
	summary string
	run     func(ctx context.Context, a *app, args []string) error
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("verneuilctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.globalFlags(fs)
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		printUsage(stderr)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "verneuilctl:", err)
		}
		return 2
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		printUsage(stdout)
		return 0
	}
	cmd := commands[name]
	if cmd == nil {
		fmt.Fprintf(stderr, "verneuilctl: unknown command %q (run verneuilctl help)\n", name)
		return 2
	}
	err := cmd.run(ctx, a, rest)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "verneuilctl %s: %s\n", name, oneLine(err))
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "usage: verneuilctl %s %s\n", cmd.name, cmd.usage)
		return 2
	}
	return 1
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func (a *app) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.configSpec, "config", a.configSpec, "configuration: inline JSON, @file or a file path (default $VERNEUIL_CONFIG, else the embedded default)")
	fs.StringVar(&a.logLevel, "log-level", a.logLevel, "log level: debug, info, warn, error (default from the configuration)")
	fs.BoolVar(&a.jsonOut, "json", a.jsonOut, "print data as JSON")
}

// parse parses a subcommand's flags, allowing flags after positional
// arguments ("restore DB --out FILE").
func (a *app) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	a.globalFlags(fs)
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
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
	a.log = verneuil.NewLogger(a.cfg)
	return a.cfg, nil
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: verneuilctl [--config SPEC] [--log-level L] [--json] COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fmt.Fprintf(w, "  %-14s %s\n      %s %s\n", n, c.summary, n, c.usage)
	}
}
