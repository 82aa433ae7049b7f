package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/lifeline-dev/lifeline/agent"
	"github.com/lifeline-dev/lifeline/bus"
)

// agentSummary is the one line `lifeline --help` says about the agent.
const agentSummary = "Supervise one bot: start or adopt it, respawn it when it dies or hangs, obey restart/stop/start."

// AgentCommand supervises one bot: `lifeline agent`.
type AgentCommand struct {
	env *env

	Name             string
	NATSURL          string
	NATSCA           string
	NATSNkey         string
	PIDFile          string
	HeartbeatTimeout time.Duration
	StartTimeout     time.Duration
	StopTimeout      time.Duration
	LogFile          string
	BackoffMin       time.Duration
	BackoffMax       time.Duration
	BackoffReset     time.Duration
	StopBotOnExit    bool
	Command          []string // the bot's command line; empty for the demo bot
}

// flagSet defines the agent's flags on c's fields.
func (c *AgentCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("agent")
	fs.StringVar(&c.Name, "name", "bot", "Bot to supervise (1-64 of A-Z a-z 0-9 _ -).")
	fs.StringVar(&c.NATSURL, "nats-url", bus.URLs(""), "Bus to connect to; a comma list gives failover; defaults to $NATS_URL, else nats://127.0.0.1:4222.")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "Trust the bus's TLS certificate when signed by the CA in `FILE` (PEM); the demo bot gets it too.")
	fs.StringVar(&c.NATSNkey, "nats-nkey", "", "Log in to the bus with the nkey seed in `FILE`; default: ./data/bus/agent.nk when the bus is on loopback and that file exists. The bot gets bot.nk from the same directory when there is one.")
	fs.StringVar(&c.PIDFile, "pid-file", "", "Keep the bot's PID in `FILE` (default: data/NAME.pid, so data/bot.pid).")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", 5*time.Second, "Kill and respawn the bot after this long without a heartbeat; 0 turns hang detection off (for programs that send none).")
	fs.DurationVar(&c.StartTimeout, "start-timeout", 30*time.Second, "Longest wait for a new bot's first heartbeat before it counts as hung.")
	fs.DurationVar(&c.StopTimeout, "stop-timeout", 10*time.Second, "Grace period after the shutdown request and SIGTERM before SIGKILL.")
	fs.StringVar(&c.LogFile, "log-file", "", "Send the bot's stdout and stderr to `FILE` (default: data/NAME.log, so data/bot.log).")
	fs.DurationVar(&c.BackoffMin, "backoff-min", 100*time.Millisecond, "First wait before respawning a bot that keeps dying young.")
	fs.DurationVar(&c.BackoffMax, "backoff-max", 15*time.Second, "Longest wait between respawns of a crash-looping bot.")
	fs.DurationVar(&c.BackoffReset, "backoff-reset", 60*time.Second, "A bot that ran this long is healthy again: the backoff starts over.")
	fs.BoolVar(&c.StopBotOnExit, "stop-bot-on-exit", false, "Stop the bot when the agent stops (by default the bot outlives its agent).")
	return fs
}

// Usage prints `lifeline agent --help`.
func (c *AgentCommand) Usage() {
	writeHelp(c.env.stdout, "lifeline agent [flags] [-- COMMAND ARGS...]", agentSummary, `The agent is the only authority over its bot's process. It starts the bot, or
adopts the one already running (found through its locked PID file), respawns it
when it exits, kills and respawns it when its heartbeats stop, and answers
status, restart, stop and start on the bus. Stopping the agent leaves the bot
running unless --stop-bot-on-exit is given; a new agent adopts it.

COMMAND ARGS... is the program to run as the bot, after the flags and "--".
Without one it runs the demo bot, this same binary:
  lifeline bot --name NAME --pid-file FILE   (the bus URL and login in its environment)

Examples:
  lifeline agent
  lifeline agent --name mybot --heartbeat-timeout 0 -- python3 mybot.py --verbose
  lifeline agent --name worker --nats-url nats://dash.example:4222 -- ./worker
  lifeline agent --nats-url tls://dash-a:4222,tls://dash-b:4222 --nats-nkey agent.nk --nats-ca ca.pem

The bus takes no anonymous client. Beside a dashboard started in the same
directory, the agent logs in with ./data/bus/agent.nk by itself; elsewhere give
it a copy of that file (--nats-nkey), or a password login in $NATS_URL
(nats://USER:PASSWORD@host:port), never in argv: logs show it as xxxxx.`,
		(&AgentCommand{}).flagSet(), "name", "nats-url", "nats-nkey", "nats-ca", "pid-file", "heartbeat-timeout", "start-timeout", "stop-timeout",
		"log-file", "backoff-min", "backoff-max", "backoff-reset", "stop-bot-on-exit")
}

// ParseFlags fills c from args (flags, then the bot's command line) and the
// LIFELINE_* environment, and refuses a bad name or impossible timings
// before anything starts.
func (c *AgentCommand) ParseFlags(args []string) error {
	command, err := parseArgs(c.flagSet(), args, false)
	if err != nil {
		return usageErr("agent", err)
	}
	c.Command = command
	c.NATSURL = bus.URLs(c.NATSURL)
	return usageErr("agent", c.validate())
}

// validate refuses a bad name or impossible timings.
func (c *AgentCommand) validate() error {
	if err := bus.ValidName(c.Name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	if len(c.Command) > 0 && c.Command[0] == "" {
		return errors.New("the command after -- is empty")
	}
	checks := []struct {
		flag string
		d    time.Duration
		zero bool // 0 allowed
	}{
		{"--heartbeat-timeout", c.HeartbeatTimeout, true},
		{"--start-timeout", c.StartTimeout, false},
		{"--stop-timeout", c.StopTimeout, false},
		{"--backoff-min", c.BackoffMin, false},
		{"--backoff-max", c.BackoffMax, false},
		{"--backoff-reset", c.BackoffReset, false},
	}
	for _, ch := range checks {
		if ch.d < 0 || (ch.d == 0 && !ch.zero) {
			return fmt.Errorf("%s %v: must be a positive duration such as 5s", ch.flag, ch.d)
		}
	}
	if c.BackoffMax < c.BackoffMin {
		return fmt.Errorf("--backoff-max %v is shorter than --backoff-min %v", c.BackoffMax, c.BackoffMin)
	}
	return nil
}

// Run parses args and supervises the bot until ctx is done.
func (c *AgentCommand) Run(ctx context.Context, args []string) error {
	if err := c.ParseFlags(args); err != nil {
		return err
	}
	e := c.env
	self, err := os.Executable()
	if err != nil {
		return advise(fmt.Errorf("find the lifeline binary: %w", err), "run lifeline by its full path")
	}
	login, err := bus.ResolveLogin(c.NATSURL, c.NATSNkey, bus.LoginAgent)
	if err != nil {
		return adviseLogin(err)
	}
	botLogin, err := bus.ResolveLogin("", botNkey(login), "")
	if err != nil {
		return adviseLogin(err)
	}
	a := &agent.Agent{
		Name:             c.Name,
		NATSURL:          c.NATSURL,
		NATSCA:           c.NATSCA,
		Login:            login,
		BotLogin:         botLogin,
		PIDFile:          orDefault(c.PIDFile, filepath.Join("data", c.Name+".pid")),
		LogFile:          orDefault(c.LogFile, filepath.Join("data", c.Name+".log")),
		Command:          c.Command,
		Self:             self,
		HeartbeatTimeout: c.HeartbeatTimeout,
		StartTimeout:     c.StartTimeout,
		StopTimeout:      c.StopTimeout,
		BackoffMin:       c.BackoffMin,
		BackoffMax:       c.BackoffMax,
		BackoffReset:     c.BackoffReset,
		StopBotOnExit:    c.StopBotOnExit,
		Version:          e.version,
		Logger:           e.logger(slog.LevelInfo),
	}
	err = a.Run(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, agent.ErrAnotherAgent):
		return advise(err, fmt.Sprintf("only one agent may supervise bot %q: use that one (lifeline status %s), or stop it first", c.Name, c.Name))
	case errors.Is(err, exec.ErrNotFound):
		return advise(err, "install it, or give its full path after --")
	case errors.Is(err, fs.ErrPermission):
		return advise(err, "make data/ (--pid-file, --log-file) writable, and run the agent as the same user as the bot")
	default:
		return advise(err, fmt.Sprintf("see the log above and %s", a.LogFile))
	}
}

// orDefault returns v, or def when v is empty.
func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// botNkey is the seed file the agent hands its bot: the bot login beside the
// agent's own seed when there is one, so the bot cannot act as the agent;
// else the agent's own; else none.
func botNkey(l bus.Login) string {
	if l.NkeyFile == "" {
		return ""
	}
	own, err := filepath.Abs(l.NkeyFile)
	if err != nil {
		return l.NkeyFile
	}
	if b := bus.SeedFile(filepath.Dir(own), bus.LoginBot); b != own {
		if st, err := os.Lstat(b); err == nil && st.Mode().IsRegular() {
			return b
		}
	}
	return own
}

// adviseLogin explains a bus login that could not be read.
func adviseLogin(err error) error {
	if errors.Is(err, bus.ErrNotPrivate) {
		return advise(err, "credentials must be readable by their owner only")
	}
	return advise(err, "check --nats-nkey (LIFELINE_NATS_NKEY): a seed file the dashboard made in its data/bus/, or one from `nk -gen user`")
}
