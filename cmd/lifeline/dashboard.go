package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"syscall"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard"
)

// dashboardCmd runs the dashboard: the embedded bus, the page and the API.
type dashboardCmd struct {
	HTTP       string `name:"http" default:"0.0.0.0:8000" help:"Address of the web page and HTTP API."`
	NATSListen string `name:"nats-listen" default:"127.0.0.1:4222" help:"Address of the embedded NATS server (the bus) that agents and bots connect to."`
	Data       string `name:"data" default:"./data" help:"Directory for dashboard.token."`
	Token      string `name:"token" placeholder:"T" help:"Access token for the page and the API (default: the one in --data/dashboard.token, generated there on first start)."`
	DefaultBot string `name:"default-bot" default:"bot" help:"Bot that /api/bot/status and /api/bot/restart act on."`
	Verbose    bool   `name:"verbose" help:"Log at debug level."`
}

// Help is the long help of `lifeline dashboard --help`.
func (dashboardCmd) Help() string {
	return `The dashboard embeds the bus (a NATS server) that agents and bots connect to,
serves the web page with the Emergency Bot Controls, and the HTTP API. It prints
the login URL and the access token when it starts. Stopping it (Ctrl+C) never
stops a bot.

Examples:
  lifeline dashboard
  lifeline dashboard --http 127.0.0.1:9000 --nats-listen 0.0.0.0:4222
  LIFELINE_TOKEN=s3cret lifeline dashboard`
}

// Validate refuses addresses and names that cannot work, before anything starts.
func (c *dashboardCmd) Validate() error {
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

// Run serves until ctx is done.
func (c *dashboardCmd) Run(ctx context.Context, e *env) error {
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
