package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"syscall"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard"
)

// dashboardSummary is the one line `lifeline --help` says about the dashboard.
const dashboardSummary = "Run the dashboard: the bus (embedded NATS), the web page and the HTTP API."

// DashboardCommand runs the dashboard, the embedded bus, the page and the
// API: `lifeline dashboard`.
type DashboardCommand struct {
	env *env

	HTTP       string
	NATSListen string
	Data       string
	Token      string
	DefaultBot string
	Verbose    bool
}

// flagSet defines the dashboard's flags on c's fields.
func (c *DashboardCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("dashboard")
	fs.StringVar(&c.HTTP, "http", "0.0.0.0:8000", "Address of the web page and HTTP API.")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "Address of the embedded NATS server (the bus) that agents and bots connect to.")
	fs.StringVar(&c.Data, "data", "./data", "Directory for dashboard.token.")
	fs.StringVar(&c.Token, "token", "", "Require token `T` for the page and the API (default: the one in --data/dashboard.token, generated there on first start).")
	fs.StringVar(&c.DefaultBot, "default-bot", "bot", "Bot that /api/bot/status and /api/bot/restart act on.")
	fs.BoolVar(&c.Verbose, "verbose", false, "Log at debug level.")
	return fs
}

// Usage prints `lifeline dashboard --help`.
func (c *DashboardCommand) Usage() {
	writeHelp(c.env.stdout, "lifeline dashboard [flags]", dashboardSummary, `The dashboard embeds the bus (a NATS server) that agents and bots connect to,
serves the web page with the Emergency Bot Controls, and the HTTP API. It prints
the login URL and the access token when it starts. Stopping it (Ctrl+C) never
stops a bot.

Examples:
  lifeline dashboard
  lifeline dashboard --http 127.0.0.1:9000 --nats-listen 0.0.0.0:4222
  LIFELINE_TOKEN=s3cret lifeline dashboard`,
		(&DashboardCommand{}).flagSet(), "http", "nats-listen", "data", "token", "default-bot", "verbose")
}

// ParseFlags fills c from args and the LIFELINE_* environment, and refuses
// addresses and names that cannot work, before anything starts.
func (c *DashboardCommand) ParseFlags(args []string) error {
	rest, err := parseArgs(c.flagSet(), args, false)
	if err != nil {
		return usageErr("dashboard", err)
	}
	if len(rest) > 0 {
		return usageErr("dashboard", fmt.Errorf("unexpected argument %q", rest[0]))
	}
	return usageErr("dashboard", c.validate())
}

// validate refuses addresses and names that cannot work.
func (c *DashboardCommand) validate() error {
	for _, a := range []struct{ flag, addr string }{{"--http", c.HTTP}, {"--nats-listen", c.NATSListen}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q: want HOST:PORT, for example 127.0.0.1:8000", a.flag, a.addr)
		}
	}
	if err := bus.ValidName(c.DefaultBot); err != nil {
		return fmt.Errorf("--default-bot: %w", err)
	}
	return nil
}

// Run parses args and serves until ctx is done.
func (c *DashboardCommand) Run(ctx context.Context, args []string) error {
	if err := c.ParseFlags(args); err != nil {
		return err
	}
	e := c.env
	level := slog.LevelInfo
	if c.Verbose {
		level = slog.LevelDebug
	}
	d := &dashboard.Dashboard{
		HTTPAddr:   c.HTTP,
		NATSListen: c.NATSListen,
		DataDir:    c.Data,
		Token:      c.Token,
		DefaultBot: c.DefaultBot,
		Version:    e.version,
		Logger:     e.logger(level),
		Out:        e.stdout,
	}
	// Bind before serving, so a port conflict is reported as such and
	// nothing else has started.
	if err := d.Open(); err != nil {
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			return advise(err, "another process uses that port: stop it, or choose another with --http / --nats-listen")
		case errors.Is(err, fs.ErrPermission):
			return advise(err, "make the data directory ("+c.Data+") writable by this user, or pick a port above 1023")
		default:
			return advise(err, "check --http, --nats-listen and --data")
		}
	}
	if err := d.Run(ctx); err != nil {
		return advise(err, "the dashboard stopped; agents and bots keep running, start it again")
	}
	return nil
}
