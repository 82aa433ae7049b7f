package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lifeline-dev/lifeline/bot"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
)

// botSummary is the one line `lifeline --help` says about the bot.
const botSummary = "Run the built-in demo bot (what the agent starts when given no command)."

// BotCommand runs the built-in demo bot: `lifeline bot`.
type BotCommand struct {
	env *env

	Name      string
	NATSURL   string
	NATSCA    string
	NATSNkey  string
	PIDFile   string
	Heartbeat time.Duration
	Poll      time.Duration
	Inbox     string
	Outbox    string
}

// flagSet defines the bot's flags on c's fields.
func (c *BotCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("bot")
	fs.StringVar(&c.Name, "name", "bot", "Bot name (1-64 of A-Z a-z 0-9 _ -).")
	fs.StringVar(&c.NATSURL, "nats-url", bus.URLs(""), "Bus to connect to; a comma list gives failover; defaults to $NATS_URL, else nats://127.0.0.1:4222.")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "Trust the bus's TLS certificate when signed by the CA in `FILE` (PEM).")
	fs.StringVar(&c.NATSNkey, "nats-nkey", "", "Log in to the bus with the nkey seed in `FILE` (an agent hands its bot its login in the environment); default: ./data/bus/bot.nk when the bus is on loopback and that file exists.")
	fs.StringVar(&c.PIDFile, "pid-file", "", "Keep the PID in `FILE`, locked for the bot's whole life (default: data/NAME.pid, so data/bot.pid).")
	fs.DurationVar(&c.Heartbeat, "heartbeat", bot.DefaultHeartbeat, "Heartbeat interval.")
	fs.DurationVar(&c.Poll, "poll", bot.DefaultPoll, "How often to look for work when there is none.")
	fs.StringVar(&c.Inbox, "inbox", "data/inbox", "Directory the bot takes work from (one file per item; names starting with . or ending in .tmp are ignored).")
	fs.StringVar(&c.Outbox, "outbox", "data/outbox", "Directory the bot posts results to, as <inbox file name>.json.")
	return fs
}

// Usage prints `lifeline bot --help`.
func (c *BotCommand) Usage() {
	writeHelp(c.env.stdout, "lifeline bot [flags]", botSummary, `The demo bot processes every file dropped into --inbox once, posts the result as
<outbox>/<name>.json and removes the inbox file. It holds its PID file locked for
its whole life, publishes a heartbeat every --heartbeat and obeys shutdown
requests. Usually the agent starts it; run it by hand to try it out.
Exits with status 3 when another live bot holds the PID file.

Examples:
  lifeline bot
  lifeline bot --name demo2 --inbox /tmp/in --outbox /tmp/out
  echo hello > data/inbox/greeting.tmp && mv data/inbox/greeting.tmp data/inbox/greeting
  lifeline bot --nats-url tls://dash.example:4222 --nats-nkey bot.nk --nats-ca ca.pem`,
		(&BotCommand{}).flagSet(), "name", "nats-url", "nats-nkey", "nats-ca", "pid-file", "heartbeat", "poll", "inbox", "outbox")
}

// ParseFlags fills c from args and the LIFELINE_* environment, and refuses a
// bad name or interval before anything starts.
func (c *BotCommand) ParseFlags(args []string) error {
	rest, err := parseArgs(c.flagSet(), args, false)
	if err != nil {
		return usageErr("bot", err)
	}
	if len(rest) > 0 {
		return usageErr("bot", fmt.Errorf("unexpected argument %q", rest[0]))
	}
	c.NATSURL = bus.URLs(c.NATSURL)
	return usageErr("bot", c.validate())
}

// validate refuses a bad name or interval.
func (c *BotCommand) validate() error {
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

// Run parses args and works until ctx is done or the bot is asked to shut
// down.
func (c *BotCommand) Run(ctx context.Context, args []string) error {
	if err := c.ParseFlags(args); err != nil {
		return err
	}
	e := c.env
	log := e.logger(slog.LevelInfo).With("component", "bot")
	// Without --nats-nkey the SDK finds the login: the seed its agent
	// handed it, else data/bus/bot.nk beside a dashboard.
	var login bus.Login
	if c.NATSNkey != "" {
		var err error
		if login, err = bus.ResolveLogin(c.NATSURL, c.NATSNkey, bus.LoginBot); err != nil {
			return adviseLogin(err)
		}
	}
	b := &bot.Bot{
		Login:     login,
		Name:      c.Name,
		NATSURL:   c.NATSURL,
		NATSCA:    c.NATSCA,
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
