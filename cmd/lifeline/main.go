// Command lifeline keeps a bot process alive and lets its operators see and
// restart it from anywhere: a dashboard that embeds the bus (NATS) and serves
// the web page, an agent per bot that supervises it, the built-in demo bot,
// and command-line clients that ask an agent over the bus.
//
// This file only parses the command line and turns what a sub-command returns
// into a message and an exit status; each sub-command lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/lifeline-dev/lifeline/bus"
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

// cli is the whole command line. Every flag can also come from
// LIFELINE_<FLAG> (kong.DefaultEnvars).
type cli struct {
	Dashboard dashboardCmd `cmd:"" help:"Run the dashboard: the bus (embedded NATS), the web page and the HTTP API."`
	Agent     agentCmd     `cmd:"" help:"Supervise one bot: start or adopt it, respawn it when it dies or hangs, obey restart/stop/start."`
	Bot       botCmd       `cmd:"" help:"Run the built-in demo bot (what the agent starts when given no command)."`
	Status    statusCmd    `cmd:"" help:"Show a bot's status, as its agent sees it."`
	Restart   restartCmd   `cmd:"" help:"Restart a bot through its agent; prints the old and new PID."`
	Stop      stopCmd      `cmd:"" help:"Stop a bot through its agent (it stays stopped until started)."`
	Start     startCmd     `cmd:"" help:"Start a stopped bot through its agent."`
	Version   versionCmd   `cmd:"" help:"Print the version of this binary."`
}

// env is what every sub-command's Run receives besides the context: the
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

// advise attaches what to do to err (nil stays nil). An error that already
// ends in advice of its own ("...; choose another address with --http") is
// kept as it is, so the operator reads one piece of advice, the most precise.
func advise(err error, todo string) error {
	if err == nil || strings.Contains(err.Error(), "; ") {
		return err
	}
	return &advice{err: err, todo: todo}
}

// exitRequest carries kong's request to end the process (after --help)
// up to run, so that nothing but main ever exits.
type exitRequest int

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the selected sub-command and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var c cli
	parser, err := newParser(&c, stdout, stderr)
	if err != nil {
		// The command-line model is fixed at compile time; this is a bug.
		fmt.Fprintf(stderr, "lifeline: build command line: %v; please report this bug\n", err)
		return exitFailure
	}
	defer func() {
		if r := recover(); r != nil {
			req, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = int(req)
		}
	}()
	if len(args) == 0 {
		// No sub-command: show the help, but as a usage mistake.
		parser.Stdout = stderr
		if kctx, err := kong.Trace(parser, nil); err == nil {
			kctx.PrintUsage(false)
		}
		return exitUsage
	}

	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "lifeline: %v; see: %s\n", err, helpCommand(err))
		return exitUsage
	}
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(&env{stdout: stdout, stderr: stderr, version: version})
	return report(err, stderr)
}

// newParser builds the command line into c. kong.Exit turns kong's own exit
// (after --help) into a panic that run recovers, so only main exits.
func newParser(c *cli, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(c,
		kong.Name("lifeline"),
		kong.Description("Keep a bot alive and restart it from anywhere. "+
			"Start a dashboard, then one agent per bot; ask the agent with status, restart, stop and start. "+
			"Every flag can also be set as LIFELINE_<FLAG> in the environment (LIFELINE_NATS_URL, LIFELINE_HTTP, ...)."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitRequest(code)) }),
		kong.DefaultEnvars("LIFELINE"),
		// The one default known only at run time; the others are literal in
		// the tags. Few vars keep parsing fast: kong interpolates every var
		// for every flag.
		kong.Vars{"nats_url": bus.URLs("")},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, WrapUpperBound: 100}),
	)
}

// report turns a sub-command's result into the one line the operator reads
// and the exit status scripts read. It is the only place that decides them.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "lifeline: %v\n", err)
	if errors.As(err, new(*pidfile.LockedError)) {
		return exitLocked
	}
	return exitFailure
}

// helpCommand names the help that explains a parse error: the sub-command's
// own when one was recognised.
func helpCommand(err error) string {
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		if sel := pe.Context.Selected(); sel != nil {
			return "lifeline " + strings.Fields(sel.Path())[0] + " --help"
		}
	}
	return "lifeline --help"
}
