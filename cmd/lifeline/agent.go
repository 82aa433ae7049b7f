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
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lifeline-dev/lifeline/agent"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/memtrim"
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
	LogMaxSize       sizeFlag
	LogKeep          countFlag
	LogTimestamps    bool
	BackoffMin       time.Duration
	BackoffMax       time.Duration
	BackoffReset     time.Duration
	StopBotOnExit    bool
	RequireHeartbeat bool
	Ready            string
	Command          []string // the bot's command line; empty for the demo bot

	// Config names a TOML file of many bots, supervised by this one process;
	// Check only validates it.
	Config string
	Check  bool
}

// flagSet defines the agent's flags on c's fields.
func (c *AgentCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("agent")
	fs.StringVar(&c.Name, "name", "bot", "Bot to supervise (1-64 of A-Z a-z 0-9 _ -).")
	fs.StringVar(&c.NATSURL, "nats-url", bus.URLs(""), "Bus to connect to; a comma list gives failover; defaults to $NATS_URL, else nats://127.0.0.1:4222.")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "Trust the bus's TLS certificate when signed by the CA in `FILE` (PEM); the demo bot gets it too.")
	fs.StringVar(&c.NATSNkey, "nats-nkey", "", "Log in to the bus with the nkey seed in `FILE`; default: ./data/bus/agent.nk when the bus is on loopback and that file exists. The bot gets bot.nk from the same directory when there is one.")
	fs.StringVar(&c.PIDFile, "pid-file", "", "Keep the bot's PID in `FILE` (default: data/NAME.pid, so data/bot.pid).")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", agent.DefaultHeartbeatTimeout, "Kill and respawn the bot after this long without a heartbeat; 0 turns hang detection off (for programs that send none).")
	fs.DurationVar(&c.StartTimeout, "start-timeout", agent.DefaultStartTimeout, "Longest wait for a new bot's first heartbeat before it counts as hung.")
	fs.DurationVar(&c.StopTimeout, "stop-timeout", agent.DefaultStopTimeout, "Grace period after the shutdown request and SIGTERM before SIGKILL.")
	fs.StringVar(&c.LogFile, "log-file", "", "Send the bot's stdout and stderr to `FILE` (default: data/NAME.log, so data/bot.log).")
	c.LogMaxSize, c.LogKeep = agent.DefaultLogMaxSize, agent.DefaultLogKeep
	fs.Var(&c.LogMaxSize, "log-max-size", "Rotate the log when it reaches `SIZE` (10MB, 512KB, bytes); never inside a line.")
	fs.Var(&c.LogKeep, "log-keep", "Keep `N` rotated log files (FILE.log is the newest; older ones are named with their time).")
	fs.BoolVar(&c.LogTimestamps, "log-timestamps", false, "Start each line of the log file with the time it was written (the bot's output is otherwise kept as is).")
	fs.DurationVar(&c.BackoffMin, "backoff-min", agent.DefaultBackoffMin, "First wait before respawning a bot that keeps dying young.")
	fs.DurationVar(&c.BackoffMax, "backoff-max", agent.DefaultBackoffMax, "Longest wait between respawns of a crash-looping bot.")
	fs.DurationVar(&c.BackoffReset, "backoff-reset", agent.DefaultBackoffReset, "A bot that ran this long is healthy again: the backoff starts over.")
	fs.BoolVar(&c.RequireHeartbeat, "require-heartbeat", false, "Treat a COMMAND bot that sends no heartbeat within --start-timeout as hung (the demo bot always is). Without it a silent program runs, and hang detection arms at its first heartbeat (bus, or sd_notify WATCHDOG=1 or READY=1).")
	fs.StringVar(&c.Ready, "ready", "", "With \"notify\": the bot counts as starting until it sends sd_notify READY=1 (for at most --start-timeout). Without it the agent waits for READY=1 once the bot has sent one.")
	fs.BoolVar(&c.StopBotOnExit, "stop-bot-on-exit", false, "Stop the bot when the agent stops (by default the bot outlives its agent).")
	fs.StringVar(&c.Config, "config", "", "Supervise every bot of the TOML `FILE` in this one process; SIGHUP re-reads it. The bot flags above then come from the file.")
	fs.BoolVar(&c.Check, "check", false, "With --config: only check the file, exit 0 when good, 2 (saying why) when bad.")
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

A COMMAND bot counts as running once started, and a program that sends no
heartbeat is never killed for its silence: hang detection arms at its first
heartbeat, a bus heartbeat or systemd's sd_notify (the agent sets NOTIFY_SOCKET
and WATCHDOG_USEC, as systemd does for Type=notify with WatchdogSec=: WATCHDOG=1
is a heartbeat, READY=1 arms it too, STATUS= shows in lifeline status).
--require-heartbeat holds a bot to a first heartbeat within --start-timeout.

Examples:
  lifeline agent
  lifeline agent --name mybot -- python3 mybot.py --verbose
  lifeline agent --name pybot --ready notify -- python3 examples/python/bot.py
  lifeline agent --name worker --nats-url nats://dash.example:4222 -- ./worker
  lifeline agent --nats-url tls://dash-a:4222,tls://dash-b:4222 --nats-nkey agent.nk --nats-ca ca.pem
  lifeline agent --config fleet.toml          (many bots, one process; SIGHUP re-reads it)
  lifeline agent --config fleet.toml --check  (exit 0 when good, 2 with file:line and why)

The bus takes no anonymous client. Beside a dashboard started in the same
directory, the agent logs in with ./data/bus/agent.nk by itself; elsewhere give
it a copy of that file (--nats-nkey), or a password login in $NATS_URL
(nats://USER:PASSWORD@host:port), never in argv: logs show it as xxxxx.`,
		(&AgentCommand{}).flagSet(), "name", "nats-url", "nats-nkey", "nats-ca", "pid-file", "heartbeat-timeout", "start-timeout", "stop-timeout",
		"log-file", "log-max-size", "log-keep", "log-timestamps", "backoff-min", "backoff-max", "backoff-reset", "require-heartbeat", "ready", "stop-bot-on-exit", "config", "check")
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
	if c.Config != "" {
		if len(command) > 0 {
			return usageErr("agent", errors.New("a command after -- goes in the --config file (command = [...])"))
		}
		return nil
	}
	if c.Check {
		return usageErr("agent", errors.New("--check checks the file --config names; give one"))
	}
	return usageErr("agent", c.validate())
}

// validate refuses a bad name or impossible timings, by agent's rules (the
// flags' values as given: a 0 from a flag is refused, not made a default),
// and names the flag at fault.
func (c *AgentCommand) validate() error {
	err := c.agent().Validate()
	var ce *agent.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	switch {
	case ce.Field == "Name":
		return fmt.Errorf("--name: %w", ce.Err)
	case ce.Field == "Command":
		return errors.New("the command after -- is empty")
	case ce.Field == "Ready":
		return fmt.Errorf("--ready %q: must be \"notify\" or empty", c.Ready)
	case errors.Is(ce.Err, agent.ErrBackoffOrder):
		return fmt.Errorf("--backoff-max %v is shorter than --backoff-min %v", c.BackoffMax, c.BackoffMin)
	}
	durationFlags := map[string]string{
		"HeartbeatTimeout": "--heartbeat-timeout",
		"StartTimeout":     "--start-timeout",
		"StopTimeout":      "--stop-timeout",
		"BackoffMin":       "--backoff-min",
		"BackoffMax":       "--backoff-max",
		"BackoffReset":     "--backoff-reset",
	}
	if flag, ok := durationFlags[ce.Field]; ok {
		return fmt.Errorf("%s %v: must be a positive duration such as 5s", flag, ce.Value)
	}
	return err
}

// agent returns the agent c's flags describe; Run adds what needs more than
// the flags (logins, the binary, the log).
func (c *AgentCommand) agent() *agent.Agent {
	return &agent.Agent{
		Name:             c.Name,
		NATSURL:          c.NATSURL,
		NATSCA:           c.NATSCA,
		PIDFile:          orDefault(c.PIDFile, filepath.Join("data", c.Name+".pid")),
		LogFile:          orDefault(c.LogFile, filepath.Join("data", c.Name+".log")),
		LogMaxSize:       int64(c.LogMaxSize),
		LogKeep:          int(c.LogKeep),
		LogTimestamps:    c.LogTimestamps,
		Command:          c.Command,
		HeartbeatTimeout: c.HeartbeatTimeout,
		StartTimeout:     c.StartTimeout,
		StopTimeout:      c.StopTimeout,
		BackoffMin:       c.BackoffMin,
		BackoffMax:       c.BackoffMax,
		BackoffReset:     c.BackoffReset,
		StopBotOnExit:    c.StopBotOnExit,
		RequireHeartbeat: c.RequireHeartbeat,
		Ready:            c.Ready,
	}
}

// Run parses args and supervises the bot until ctx is done.
func (c *AgentCommand) Run(ctx context.Context, args []string) error {
	if err := c.ParseFlags(args); err != nil {
		return err
	}
	if c.Config != "" {
		return c.runFleet(ctx)
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
	log := e.logger(slog.LevelInfo)
	a := c.agent()
	a.Login, a.BotLogin = login, botLogin
	a.Self = self
	a.Version = e.version
	a.Logger = log
	// The process-wide memory tricks are the binary's, not the library's:
	// an agent run inside a test must not trim the test binary.
	var mem memoryReleaser
	a.OnStarted = func() { releaseStartupPages(log.With("component", "agent", "bot", c.Name)) }
	a.OnBotRunning = mem.release
	err = a.Run(ctx)
	mem.wait()
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

// releaseStartupPages runs once the agent is started: the code only package
// initialisation ran (the dashboard's server, HTTP, TLS) need not stay
// resident for the agent's long life.
func releaseStartupPages(log *slog.Logger) {
	if st, err := memtrim.ReleaseStartupPages(); err != nil {
		log.Debug("release startup pages", "err", err)
	} else {
		log.Debug("released startup pages", "mappings", st.Mappings, "kB", st.Bytes>>10)
	}
}

// memoryReleaser hands the garbage of a bot's (re)start back to the OS once
// the new bot runs. Left to the collector's pacing, the agent's heap grows to
// its 4 MB floor before a collection and keeps the freed pages long after, so
// a bot that crashes now and then would slowly take the agent from ~9 to
// ~14 MB (measured over 60 kills; ~11 MB with this). It runs beside the
// agent's loop, which must not wait a collection out, never twice at once,
// and wait joins it before the command returns.
//
// It waits for memoryQuiet without a new start first (but never more than
// memoryMaxDelay after the first): a forced collection is two stops of the
// world and a whole-heap mark, several milliseconds of both cores on a
// small machine, and run at once it fell on the new bot's own start and on
// the next respawns of a burst (ten bots killed at once: each spawn waited
// it out). One bot killed, respawned within 19 ms: ~4 ms of that was this.
type memoryReleaser struct {
	mu      sync.Mutex
	t       *time.Timer
	first   time.Time // when the pending collection was first asked for
	stopped bool
	busy    atomic.Bool
	wg      sync.WaitGroup
	free    func() // debug.FreeOSMemory when nil; a test's counter
}

const (
	memoryQuiet    = 500 * time.Millisecond
	memoryMaxDelay = 5 * time.Second
)

// release asks for a collection once starts have been quiet for a moment.
func (m *memoryReleaser) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.stopped:
	case m.t == nil:
		m.first = time.Now()
		m.t = time.AfterFunc(memoryQuiet, m.collect)
	case time.Since(m.first) < memoryMaxDelay:
		m.t.Reset(memoryQuiet) // a burst is still starting bots
	}
}

// collect runs the collection asked for, unless one is running.
func (m *memoryReleaser) collect() {
	m.mu.Lock()
	m.t = nil
	if m.stopped || !m.busy.CompareAndSwap(false, true) {
		m.mu.Unlock()
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()
	defer m.busy.Store(false)
	if m.free != nil {
		m.free()
		return
	}
	debug.FreeOSMemory()
}

// wait drops a pending collection and returns once none runs; call it
// after the agent stops.
func (m *memoryReleaser) wait() {
	m.mu.Lock()
	m.stopped = true
	if m.t != nil {
		m.t.Stop()
	}
	m.mu.Unlock()
	m.wg.Wait()
}
