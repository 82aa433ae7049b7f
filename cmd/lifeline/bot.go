package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lifeline-dev/lifeline/bot"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
)

// botCmd runs the built-in demo bot.
type botCmd struct {
	Name      string        `name:"name" default:"bot" help:"Bot name (1-64 of A-Z a-z 0-9 _ -)."`
	NATSURL   string        `name:"nats-url" default:"${nats_url}" help:"Bus to connect to; a comma list gives failover; defaults to $NATS_URL, else nats://127.0.0.1:4222."`
	PIDFile   string        `name:"pid-file" placeholder:"FILE" help:"PID file, locked for the bot's whole life (default: data/NAME.pid, so data/bot.pid)."`
	Heartbeat time.Duration `name:"heartbeat" default:"1s" help:"Heartbeat interval."`
	Poll      time.Duration `name:"poll" default:"200ms" help:"How often to look for work when there is none."`
	Inbox     string        `name:"inbox" default:"data/inbox" help:"Directory the bot takes work from (one file per item; names starting with . or ending in .tmp are ignored)."`
	Outbox    string        `name:"outbox" default:"data/outbox" help:"Directory the bot posts results to, as <inbox file name>.json."`
}

// Help is the long help of `lifeline bot --help`.
func (botCmd) Help() string {
	return `The demo bot processes every file dropped into --inbox once, posts the result as
<outbox>/<name>.json and removes the inbox file. It holds its PID file locked for
its whole life, publishes a heartbeat every --heartbeat and obeys shutdown
requests. Usually the agent starts it; run it by hand to try it out.
Exits with status 3 when another live bot holds the PID file.

Examples:
  lifeline bot
  lifeline bot --name demo2 --inbox /tmp/in --outbox /tmp/out
  echo hello > data/inbox/greeting.tmp && mv data/inbox/greeting.tmp data/inbox/greeting`
}

// Validate refuses a bad name or interval before anything starts.
func (c *botCmd) Validate() error {
	if err := bus.ValidName(c.Name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	if c.Heartbeat <= 0 {
		return fmt.Errorf("--heartbeat %v: must be a positive duration such as 1s", c.Heartbeat)
	}
	if c.Poll <= 0 {
		return fmt.Errorf("--poll %v: must be a positive duration such as 200ms", c.Poll)
	}
	return nil
}

// Run works until ctx is done or the bot is asked to shut down.
func (c *botCmd) Run(ctx context.Context, e *env) error {
	log := e.logger(slog.LevelInfo).With("component", "bot")
	b := &bot.Bot{
		Name:      c.Name,
		NATSURL:   c.NATSURL,
		PIDFile:   orDefault(c.PIDFile, filepath.Join("data", c.Name+".pid")),
		Heartbeat: c.Heartbeat,
		Poll:      c.Poll,
		Version:   e.version,
		Logger:    log,
		Worker:    &bot.Demo{Inbox: c.Inbox, Outbox: c.Outbox, Logger: log},
	}
	err := b.Run(ctx)
	var locked *pidfile.LockedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &locked):
		// Keep the *pidfile.LockedError in the chain: main maps it to exit 3.
		return advise(fmt.Errorf("bot %q is already running: %w", c.Name, locked),
			fmt.Sprintf("leave it be, or stop it with: lifeline stop %s (or kill the pid named, if no agent supervises it)", c.Name))
	case errors.Is(err, fs.ErrPermission):
		return advise(err, "make the PID file's directory and --inbox/--outbox writable by this user")
	default:
		return advise(err, "see the log above")
	}
}
