package main

import (
	"context"
	"errors"
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

// agentCmd supervises one bot.
type agentCmd struct {
	Name             string        `name:"name" default:"bot" help:"Name of the bot to supervise (1-64 of A-Z a-z 0-9 _ -)."`
	NATSURL          string        `name:"nats-url" default:"${nats_url}" help:"Bus to connect to; a comma list gives failover; defaults to $NATS_URL, else nats://127.0.0.1:4222."`
	PIDFile          string        `name:"pid-file" placeholder:"FILE" help:"The bot's PID file (default: data/NAME.pid, so data/bot.pid)."`
	HeartbeatTimeout time.Duration `name:"heartbeat-timeout" default:"5s" help:"Kill and respawn the bot after this long without a heartbeat; 0 turns hang detection off (for programs that send none)."`
	StartTimeout     time.Duration `name:"start-timeout" default:"30s" help:"Longest wait for a new bot's first heartbeat before it counts as hung."`
	StopTimeout      time.Duration `name:"stop-timeout" default:"10s" help:"Grace period after the shutdown request and SIGTERM before SIGKILL."`
	LogFile          string        `name:"log-file" placeholder:"FILE" help:"Where the bot's stdout and stderr go (default: data/NAME.log, so data/bot.log)."`
	BackoffMin       time.Duration `name:"backoff-min" default:"100ms" help:"First wait before respawning a bot that keeps dying young."`
	BackoffMax       time.Duration `name:"backoff-max" default:"15s" help:"Longest wait between respawns of a crash-looping bot."`
	BackoffReset     time.Duration `name:"backoff-reset" default:"60s" help:"A bot that ran this long is healthy again: the backoff starts over."`
	StopBotOnExit    bool          `name:"stop-bot-on-exit" help:"Stop the bot when the agent stops (by default the bot outlives its agent)."`
	Command          []string      `arg:"" optional:"" passthrough:"" help:"Program to run as the bot, after --; without one, the built-in demo bot (lifeline bot)."`
}

// Help is the long help of `lifeline agent --help`.
func (agentCmd) Help() string {
	return `The agent is the only authority over its bot's process. It starts the bot, or
adopts the one already running (found through its locked PID file), respawns it
when it exits, kills and respawns it when its heartbeats stop, and answers
status, restart, stop and start on the bus. Stopping the agent leaves the bot
running unless --stop-bot-on-exit is given; a new agent adopts it.

Without a command it runs the demo bot, this same binary:
  lifeline bot --name NAME --pid-file FILE --nats-url URL

Examples:
  lifeline agent
  lifeline agent --name mybot --heartbeat-timeout 0 -- python3 mybot.py --verbose
  lifeline agent --name worker --nats-url nats://dash.example:4222 -- ./worker`
}

// Validate refuses a bad name or impossible timings before anything starts.
func (c *agentCmd) Validate() error {
	if err := bus.ValidName(c.Name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	if cmd := c.command(); len(cmd) > 0 && cmd[0] == "" {
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

// Run supervises the bot until ctx is done.
func (c *agentCmd) Run(ctx context.Context, e *env) error {
	self, err := os.Executable()
	if err != nil {
		return advise(fmt.Errorf("find the lifeline binary: %w", err), "run lifeline by its full path")
	}
	a := &agent.Agent{
		Name:             c.Name,
		NATSURL:          c.NATSURL,
		PIDFile:          orDefault(c.PIDFile, filepath.Join("data", c.Name+".pid")),
		LogFile:          orDefault(c.LogFile, filepath.Join("data", c.Name+".log")),
		Command:          c.command(),
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

// command returns the bot's command line, without the "--" that kong keeps
// at the front of a passthrough argument.
func (c *agentCmd) command() []string {
	if len(c.Command) > 0 && c.Command[0] == "--" {
		return c.Command[1:]
	}
	return c.Command
}

// orDefault returns v, or def when v is empty.
func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
