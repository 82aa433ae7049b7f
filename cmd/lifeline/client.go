package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

// Summaries: the one line `lifeline --help` says about each client command.
const (
	statusSummary  = "Show a bot's status, as its agent sees it."
	restartSummary = "Restart a bot through its agent; prints the old and new PID."
	stopSummary    = "Stop a bot through its agent (it stays stopped until started)."
	startSummary   = "Start a stopped bot through its agent."
)

// clientFlags are shared by status, restart, stop and start.
type clientFlags struct {
	env *env

	Name     string // the NAME argument, else $LIFELINE_NAME, else "bot"
	JSON     bool
	NATSURL  string
	NATSCA   string
	NATSNkey string
}

// define defines the flags every client command has on c's fields.
func (c *clientFlags) define(fs *flag.FlagSet) {
	fs.BoolVar(&c.JSON, "json", false, "Print the agent's reply as one JSON object instead of text.")
	fs.StringVar(&c.NATSURL, "nats-url", bus.URLs(""), "Bus the agent is connected to; a comma list gives failover; a password login goes in the URL (nats://USER:PASSWORD@host:port), best in $NATS_URL, not in argv; defaults to $NATS_URL, else nats://127.0.0.1:4222.")
	fs.StringVar(&c.NATSNkey, "nats-nkey", "", "Log in to the bus with the nkey seed in `FILE`; default: ./data/bus/operator.nk when the bus is on loopback and that file exists.")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "Trust the bus's TLS certificate when signed by the CA in `FILE` (PEM).")
}

// parse fills c from args (flags and at most one NAME, in any order) and
// the LIFELINE_* environment, and checks the bot name and the request
// timeout before anything connects.
func (c *clientFlags) parse(cmd string, fs *flag.FlagSet, args []string, timeout *time.Duration) error {
	names, err := parseArgs(fs, args, true)
	if err != nil {
		return usageErr(cmd, err)
	}
	c.Name = "bot"
	if v, ok := lookupEnv(envName("name")); ok {
		c.Name = v
	}
	switch len(names) {
	case 0:
	case 1:
		c.Name = names[0]
	default:
		return usageErr(cmd, fmt.Errorf("unexpected argument %q: give one bot NAME at most", names[1]))
	}
	c.NATSURL = bus.URLs(c.NATSURL)
	if err := bus.ValidName(c.Name); err != nil {
		return usageErr(cmd, fmt.Errorf("NAME: %w", err))
	}
	if *timeout <= 0 {
		return usageErr(cmd, fmt.Errorf("--timeout %v: must be a positive duration such as 2s", *timeout))
	}
	return nil
}

// writeClientHelp prints the help of client command cmd.
func writeClientHelp(w io.Writer, cmd, summary, text string, fs *flag.FlagSet) {
	text += `

Arguments:
  NAME                      The bot to ask (default: bot) ($LIFELINE_NAME).`
	writeHelp(w, "lifeline "+cmd+" [NAME] [flags]", summary, text, fs, "json", "nats-url", "nats-nkey", "nats-ca", "timeout")
}

// maxConnectWait bounds the wait for the bus: a loopback bus answers at
// once, and an unreachable one should be reported quickly.
const maxConnectWait = 2 * time.Second

// connect opens a short-lived client connection to the bus, logged in with
// --nats-nkey, the URL's user, or the operator seed of a dashboard started
// in this directory.
func (c *clientFlags) connect(timeout time.Duration) (*nats.Conn, error) {
	login, err := bus.ResolveLogin(c.NATSURL, c.NATSNkey, bus.LoginOperator)
	if err != nil {
		return nil, adviseLogin(err)
	}
	opts, err := login.Options()
	if err != nil {
		return nil, adviseLogin(err)
	}
	opts = append(opts, nats.Timeout(min(timeout, maxConnectWait)),
		// nats.go prints asynchronous errors to stderr by default, such as
		// a refused publish; the request returns that refusal itself
		// (bus.ErrRefused) and the user reads it in our words, once.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if c.NATSCA != "" {
		opts = append(opts, nats.RootCAs(c.NATSCA))
	}
	nc, err := bus.Connect(c.NATSURL, "lifeline cli", false, opts...)
	if errors.Is(err, bus.ErrLoginRefused) {
		return nil, c.loginRefused(login, err)
	}
	if err != nil {
		cause := errors.Unwrap(err)
		if cause == nil {
			cause = err
		}
		return nil, advise(fmt.Errorf("cannot reach the bus at %s: %w", bus.Redact(c.NATSURL), cause),
			"is the dashboard running? set --nats-url or NATS_URL")
	}
	return nc, nil
}

// loginRefused explains a login the bus refused, without nats.go's words.
func (c *clientFlags) loginRefused(login bus.Login, err error) error {
	at := bus.Redact(c.NATSURL)
	switch {
	case login.Name == "":
		return advise(fmt.Errorf("%w: the bus at %s takes no anonymous client", bus.ErrLoginRefused, at),
			"log in with --nats-nkey FILE (the dashboard's data/bus/operator.nk), or run lifeline in the dashboard's directory")
	case login.NkeyFile != "" && errors.Is(err, nats.ErrNkeysNotSupported):
		return advise(fmt.Errorf("%w: the bus at %s takes no nkey logins (%s)", bus.ErrLoginRefused, at, login.NkeyFile),
			"log in with a user and password from its users file, in NATS_URL")
	}
	how := "the user and password in --nats-url or NATS_URL"
	if login.NkeyFile != "" {
		how = "--nats-nkey " + login.NkeyFile
	}
	return advise(fmt.Errorf("%w: wrong user, password or nkey (login %s at %s)", bus.ErrLoginRefused, login.Name, at),
		"check "+how)
}

// askFailed explains a request that got no usable answer.
func (c *clientFlags) askFailed(ctx context.Context, op string, timeout time.Duration, err error) error {
	var refused *bus.RefusedError
	switch {
	case errors.As(err, &refused) && (refused.Inbox || refused.Op == bus.OpStatus):
		// Nothing reached the agent: nothing changed.
		return advise(err, "log in as an operator or a viewer (--nats-nkey FILE)")
	case errors.As(err, &refused):
		return advise(err, "log in as an operator: --nats-nkey FILE with the dashboard's data/bus/operator.nk, or an operator of its --nats-users")
	case errors.Is(err, bus.ErrNoAgent) && errors.Is(ctx.Err(), context.DeadlineExceeded):
		// An agent may exist but be slow; a restart may still complete.
		return advise(fmt.Errorf("no answer to %s from an agent for bot %q within %v (on %s)", op, c.Name, timeout, bus.Redact(c.NATSURL)),
			fmt.Sprintf("check with: lifeline status %s; raise --timeout if the bot is slow to stop", c.Name))
	case errors.Is(err, bus.ErrNoAgent):
		return advise(fmt.Errorf("no agent is supervising bot %q (on %s)", c.Name, bus.Redact(c.NATSURL)),
			"start one with: lifeline agent --name "+c.Name)
	case errors.Is(err, context.Canceled):
		return advise(fmt.Errorf("interrupted while waiting for the agent of bot %q", c.Name),
			"the agent may still carry out the "+op+": check with lifeline status "+c.Name)
	default:
		return advise(err, "check with: lifeline status "+c.Name)
	}
}

// StatusCommand prints a bot's status: `lifeline status`.
type StatusCommand struct {
	clientFlags
	Timeout time.Duration
}

// flagSet defines status's flags on c's fields.
func (c *StatusCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("status")
	c.define(fs)
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Second, "How long to wait for the agent's answer.")
	return fs
}

// Usage prints `lifeline status --help`.
func (c *StatusCommand) Usage() {
	writeClientHelp(c.env.stdout, "status", statusSummary, `Asks the bot's agent over the bus (subject lifeline.agent.NAME.status).

Examples:
  lifeline status
  lifeline status mybot --json
  lifeline status --nats-url nats://dash.example:4222 --nats-nkey operator.nk
  lifeline status --nats-url tls://dash-a:4222,tls://dash-b:4222 --nats-nkey operator.nk --nats-ca ca.pem

Beside a dashboard started in the same directory it logs in with
./data/bus/operator.nk by itself; elsewhere give it a copy of that file
(--nats-nkey). A users-file password login goes in $NATS_URL, never in argv.`, (&StatusCommand{}).flagSet())
}

// ParseFlags fills c from args and the LIFELINE_* environment, and refuses a
// bad name or timeout before connecting to anything.
func (c *StatusCommand) ParseFlags(args []string) error {
	return c.parse("status", c.flagSet(), args, &c.Timeout)
}

// Run asks the agent for the status and prints it. It does nothing before the
// request that the answer does not need: status must stay fast.
func (c *StatusCommand) Run(ctx context.Context, args []string) error {
	if err := c.ParseFlags(args); err != nil {
		return err
	}
	nc, err := c.connect(c.Timeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	st, err := bus.AskStatus(ctx, nc, c.Name)
	if err != nil {
		return c.askFailed(ctx, bus.OpStatus, c.Timeout, err)
	}
	if c.JSON {
		return printJSON(c.env.stdout, st)
	}
	writeStatus(c.env.stdout, st, time.Now())
	return nil
}

// controlCommand is restart, stop or start: a request the agent carries out.
type controlCommand struct {
	clientFlags
	Timeout time.Duration
}

// flagSet defines the flags of control command cmd on c's fields.
func (c *controlCommand) flagSet(cmd string) *flag.FlagSet {
	fs := newFlagSet(cmd)
	c.define(fs)
	fs.DurationVar(&c.Timeout, "timeout", 40*time.Second, "How long to wait for the agent to carry it out (a stop may wait for the bot to finish its item).")
	return fs
}

// ParseFlags fills c from args and the LIFELINE_* environment, and refuses a
// bad name or timeout before connecting to anything.
func (c *controlCommand) parseFlags(cmd string, args []string) error {
	return c.parse(cmd, c.flagSet(cmd), args, &c.Timeout)
}

// RestartCommand restarts a bot through its agent: `lifeline restart`.
type RestartCommand struct{ controlCommand }

// StopCommand stops a bot through its agent: `lifeline stop`.
type StopCommand struct{ controlCommand }

// StartCommand starts a stopped bot through its agent: `lifeline start`.
type StartCommand struct{ controlCommand }

// Usage prints `lifeline restart --help`.
func (c *RestartCommand) Usage() {
	writeClientHelp(c.env.stdout, "restart", restartSummary, `Asks the bot's agent to restart it: a graceful shutdown request, SIGTERM, then
SIGKILL after the agent's --stop-timeout, and a fresh start. Works on a hung or
crashed bot too. Prints the old and the new PID.

Examples:
  lifeline restart
  lifeline restart mybot --json
  lifeline restart mybot --nats-url nats://dash.example:4222 --nats-nkey operator.nk

A login that may not restart (a viewer) is refused by the bus at once.`, new(controlCommand).flagSet("restart"))
}

// Usage prints `lifeline stop --help`.
func (c *StopCommand) Usage() {
	writeClientHelp(c.env.stdout, "stop", stopSummary, `Asks the bot's agent to stop it. The agent then leaves it stopped (no respawn)
until "lifeline start" or a restart.

Examples:
  lifeline stop
  lifeline stop mybot`, new(controlCommand).flagSet("stop"))
}

// Usage prints `lifeline start --help`.
func (c *StartCommand) Usage() {
	writeClientHelp(c.env.stdout, "start", startSummary, `Asks the bot's agent to start a stopped bot (also cancels a crash-loop backoff).

Examples:
  lifeline start
  lifeline start mybot`, new(controlCommand).flagSet("start"))
}

// Run parses args and restarts the bot through its agent.
func (c *RestartCommand) Run(ctx context.Context, args []string) error {
	if err := c.parseFlags("restart", args); err != nil {
		return err
	}
	return c.do(ctx, bus.OpRestart, func(r bus.Reply) string {
		if r.OldPID == 0 {
			return fmt.Sprintf("%s restarted: pid %d (was not running) in %d ms", c.Name, r.NewPID, r.TookMS)
		}
		return fmt.Sprintf("%s restarted: pid %d → %d in %d ms", c.Name, r.OldPID, r.NewPID, r.TookMS)
	})
}

// Run parses args and stops the bot through its agent.
func (c *StopCommand) Run(ctx context.Context, args []string) error {
	if err := c.parseFlags("stop", args); err != nil {
		return err
	}
	return c.do(ctx, bus.OpStop, func(r bus.Reply) string {
		if r.PID == 0 {
			return fmt.Sprintf("%s stopped (was not running)", c.Name)
		}
		return fmt.Sprintf("%s stopped (was pid %d)", c.Name, r.PID)
	})
}

// Run parses args and starts the bot through its agent.
func (c *StartCommand) Run(ctx context.Context, args []string) error {
	if err := c.parseFlags("start", args); err != nil {
		return err
	}
	return c.do(ctx, bus.OpStart, func(r bus.Reply) string {
		return fmt.Sprintf("%s started: pid %d", c.Name, r.PID)
	})
}

// do sends op to the agent and prints its reply with say, or as JSON.
func (c *controlCommand) do(ctx context.Context, op string, say func(bus.Reply) string) error {
	e := c.env
	nc, err := c.connect(c.Timeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	r, err := bus.Ask(ctx, nc, c.Name, op, bus.Request{RequestedBy: requestedBy()})
	if err != nil {
		return c.askFailed(ctx, op, c.Timeout, err)
	}
	if c.JSON {
		if err := printJSON(e.stdout, r); err != nil {
			return err
		}
	} else if r.OK {
		fmt.Fprintln(e.stdout, say(r))
	}
	if !r.OK {
		msg := r.Error
		if msg == "" {
			msg = "no reason given"
		}
		return advise(fmt.Errorf("%s %s: the agent refused: %s", op, c.Name, msg),
			fmt.Sprintf("see lifeline status %s and the bot's log (data/%s.log by default)", c.Name, c.Name))
	}
	return nil
}

// requestedBy says who asked, for the agent's event log: "cli alice@web-1".
func requestedBy() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "cli " + name + "@" + host
}

func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeStatus prints st for a person:
//
//	bot  running  pid 4242 on web-1
//	  up 5m3s · last heartbeat 310ms ago · restarts 2 · cpu 0.3% · rss 9.8 MB
//	  last exit: killed by signal (hung) at 10:04:55
//	  status: 12 items done, polling inbox          (sd_notify STATUS=)
//	  hang detection off: no heartbeat yet; ...     (only when not on)
//	  agent: pid 4100 on web-1, connected
func writeStatus(w io.Writer, st bus.Status, now time.Time) {
	head := st.Name + "  " + string(st.State)
	if st.PID > 0 {
		head += fmt.Sprintf("  pid %d", st.PID)
		if st.Host != "" {
			head += " on " + st.Host
		}
	}
	fmt.Fprintln(w, head)

	var facts []string
	if st.StartedAt != nil && st.PID > 0 {
		facts = append(facts, "up "+roughly(now.Sub(*st.StartedAt)))
	}
	switch {
	case st.HeartbeatAgeMS != nil:
		facts = append(facts, "last heartbeat "+roughly(time.Duration(*st.HeartbeatAgeMS)*time.Millisecond)+" ago")
	case st.LastHeartbeatAt != nil:
		facts = append(facts, "last heartbeat "+roughly(now.Sub(*st.LastHeartbeatAt))+" ago")
	case st.PID > 0:
		facts = append(facts, "no heartbeat yet")
	}
	facts = append(facts, fmt.Sprintf("restarts %d", st.Restarts))
	if st.PID > 0 {
		facts = append(facts, fmt.Sprintf("cpu %.1f%%", st.CPUPercent), "rss "+bytesize(st.RSSBytes))
	}
	fmt.Fprintln(w, "  "+strings.Join(facts, " · "))

	if st.NextStartAt != nil {
		fmt.Fprintf(w, "  next start in %s\n", roughly(st.NextStartAt.Sub(now)))
	}
	if st.LastExit != nil {
		fmt.Fprintf(w, "  last exit: %s\n", describeExit(*st.LastExit, now))
	}
	if len(st.Stats) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(st.Stats)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, st.Stats[k]))
		}
		fmt.Fprintf(w, "  stats: %s\n", strings.Join(parts, " · "))
	}
	if st.StatusText != "" {
		fmt.Fprintf(w, "  status: %s\n", printable(st.StatusText, bus.MaxStatusTextBytes))
	}
	if st.HangDetection != "" && st.HangDetection != "on" {
		fmt.Fprintf(w, "  hang detection %s\n", printable(st.HangDetection, bus.MaxTextBytes))
	}
	if st.Problem != "" {
		fmt.Fprintf(w, "  problem: %s\n", st.Problem)
	}
	agent := "  agent: "
	if st.Agent.PID > 0 {
		agent += fmt.Sprintf("pid %d", st.Agent.PID)
		if st.Agent.Host != "" {
			agent += " on " + st.Agent.Host
		}
		agent += ", "
	}
	if st.Agent.Connected {
		agent += "connected"
	} else {
		agent += "not connected"
	}
	fmt.Fprintln(w, agent)
}

// describeExit says how a process ended: "killed by signal (hung) at 10:04:55".
func describeExit(x bus.Exit, now time.Time) string {
	var how string
	switch {
	case x.Signal != "" && !strings.Contains(x.Signal, " ") && strings.HasSuffix(x.Signal, "ed"):
		how = x.Signal + " by signal" // Go's names: killed, terminated, aborted
	case x.Signal != "":
		how = "signal " + x.Signal
	default:
		how = fmt.Sprintf("exited with code %d", x.Code)
	}
	if x.Reason != "" {
		how += " (" + x.Reason + ")"
	}
	if !x.At.IsZero() {
		at := x.At.Local()
		layout := "15:04:05"
		if y, m, d := at.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
			layout = "2006-01-02 15:04:05"
		}
		how += " at " + at.Format(layout)
	}
	return how
}

// roughly rounds d to what a person wants to read: 310ms, 4.2s, 5m3s.
func roughly(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// bytesize prints n in decimal units: 9.8 MB.
func bytesize(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	default:
		return fmt.Sprintf("%d B", n)
	}
}
