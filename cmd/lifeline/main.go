// Command lifeline keeps a bot process alive and lets its operators see and
// restart it from anywhere: a dashboard that embeds the bus (NATS) and serves
// the web page, an agent per bot that supervises it, the built-in demo bot,
// and command-line clients that ask an agent over the bus.
//
// This file only picks the sub-command and turns what it returns into a
// message and an exit status; each sub-command lives in its own file and
// parses its own flags with the standard flag package, so a start of the
// binary builds only the flags it uses.
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

	"github.com/lifeline-dev/lifeline/internal/pidfile"
)

// version is set at build time with -ldflags "-X main.version=...". It must
// stay a var: the linker cannot overwrite a const.
var version = "dev"

// Exit statuses, the promise SPEC makes to scripts.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitLocked  = 3 // `lifeline bot` found its PID file held by a live bot
)

// command is one sub-command. Run parses args (the command line after the
// sub-command's name) and does the work; it returns flag.ErrHelp when asked
// for help, and a *usageError when the command line cannot work. Usage
// prints the sub-command's help to stdout.
type command interface {
	Run(ctx context.Context, args []string) error
	Usage()
}

// commands lists the sub-commands for `lifeline --help`, in that order.
var commands = []struct{ name, summary string }{
	{"dashboard", dashboardSummary},
	{"agent", agentSummary},
	{"bot", botSummary},
	{"status", statusSummary},
	{"ls", lsSummary},
	{"logs", logsSummary},
	{"restart", restartSummary},
	{"stop", stopSummary},
	{"start", startSummary},
	{"service", serviceSummary},
	{"version", versionSummary},
	{"help", "Show this help, or a command's: lifeline help agent."},
}

// newCommand returns the sub-command called name, or nil if there is none.
// Only that one is built: parsing stays cheap on every start.
func newCommand(name string, e *env) command {
	switch name {
	case "dashboard":
		return &DashboardCommand{env: e}
	case "agent":
		return &AgentCommand{env: e}
	case "bot":
		return &BotCommand{env: e}
	case "status":
		return &StatusCommand{clientFlags: clientFlags{env: e}}
	case "ls":
		return &LsCommand{env: e}
	case "logs":
		return &LogsCommand{clientFlags: clientFlags{env: e}}
	case "restart":
		return &RestartCommand{controlCommand{clientFlags: clientFlags{env: e}}}
	case "stop":
		return &StopCommand{controlCommand{clientFlags: clientFlags{env: e}}}
	case "start":
		return &StartCommand{controlCommand{clientFlags: clientFlags{env: e}}}
	case "service":
		return &ServiceCommand{env: e}
	case "version":
		return &VersionCommand{env: e}
	}
	return nil
}

// env is what every sub-command receives besides its arguments: the
// process's outputs and identity, so tests can run sub-commands in-process.
type env struct {
	stdout  io.Writer
	stderr  io.Writer
	version string
}

// logger returns a structured logger writing text to stderr. The agent and
// the dashboard add their own component key; the bot's is added here.
func (e *env) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

// advice is a failure the operator can act on: what went wrong, then what to
// do about it. main prints it as "lifeline: <what>; <what to do>".
type advice struct {
	err  error
	todo string
}

func (a *advice) Error() string { return a.err.Error() + "; " + a.todo }
func (a *advice) Unwrap() error { return a.err }

// advise attaches what to do to err (nil stays nil). Libraries never carry
// advice: cmd alone decides it, and an error gets at most one piece. One
// that already carries advice, chosen closer to the cause, keeps it, so the
// operator reads the most precise.
func advise(err error, todo string) error {
	if err == nil || errors.As(err, new(*advice)) {
		return err
	}
	return &advice{err: err, todo: todo}
}

// usageError is a command line that cannot work: a bad flag, value or
// argument. main prints it with the help to read and exits with exitUsage.
type usageError struct {
	cmd string // the sub-command whose help explains it; "" for lifeline's own
	err error
}

func (u *usageError) Error() string {
	if u.cmd == "" {
		return u.err.Error() + "; see: lifeline --help"
	}
	return u.cmd + ": " + u.err.Error() + "; see: lifeline " + u.cmd + " --help"
}

func (u *usageError) Unwrap() error { return u.err }

// usageErr wraps err as a usage error of sub-command cmd, keeping a help
// request (flag.ErrHelp) as it is.
func usageErr(cmd string, err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{cmd: cmd, err: err}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run picks the sub-command named by args[0], runs it with the rest of args
// and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, version: version}
	if len(args) == 0 {
		// No sub-command: show the help, but as a usage mistake.
		writeUsage(stderr)
		return exitUsage
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) == 0 {
			writeUsage(stdout)
			return exitOK
		}
		if cmd := newCommand(args[0], e); cmd != nil && len(args) == 1 {
			cmd.Usage()
			return exitOK
		}
		return report(&usageError{err: fmt.Errorf("no help on %q: name one command", strings.Join(args, " "))}, stderr)
	}
	cmd := newCommand(name, e)
	if cmd == nil {
		err := fmt.Errorf("unknown command %q", name)
		if strings.HasPrefix(name, "-") {
			err = fmt.Errorf("unknown flag %q (a command's flags go after its name)", name)
		}
		return report(&usageError{err: err}, stderr)
	}
	err := cmd.Run(ctx, args)
	if errors.Is(err, flag.ErrHelp) {
		cmd.Usage()
		return exitOK
	}
	return report(err, stderr)
}

// writeUsage prints lifeline's own help.
func writeUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: lifeline <command> [flags] [arguments]

Keep a bot alive and restart it from anywhere. Start a dashboard, then one agent
per bot; ask the agent with status, restart, stop and start.

Commands:
`)
	for _, c := range commands {
		writeItem(w, 14, "  "+c.name, c.summary)
	}
	fmt.Fprint(w, `
Every flag can also be set as LIFELINE_<FLAG> in the environment
(LIFELINE_NATS_URL, LIFELINE_HTTP, ...); a flag on the command line wins.
--nats-url defaults to $NATS_URL, else nats://127.0.0.1:4222.

Examples:
  lifeline dashboard
  lifeline agent --name mybot -- python3 mybot.py
  lifeline status mybot
  lifeline restart mybot

Run "lifeline <command> --help" for more information on a command.
`)
}

// report turns a sub-command's result into the one line the operator reads
// and the exit status scripts read. It is the only place that decides them.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "lifeline: %v\n", err)
	switch {
	case errors.As(err, new(*usageError)):
		return exitUsage
	case errors.As(err, new(*pidfile.LockedError)):
		return exitLocked
	}
	return exitFailure
}
