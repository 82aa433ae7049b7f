package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/lifeline-dev/lifeline/agent"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

const logsSummary = "Print a bot's last log lines from its agent, from any host; -f follows them."

// LogsCommand prints a bot's log: `lifeline logs`.
type LogsCommand struct {
	clientFlags
	Lines   int
	Follow  bool
	Timeout time.Duration
}

func (c *LogsCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("logs")
	c.define(fs)
	fs.Lookup("json").Usage = "Print each line as one JSON object ({\"stream\",\"time\",\"text\",\"seq\"}) on stdout."
	fs.IntVar(&c.Lines, "n", bus.DefaultLogLines, fmt.Sprintf("Print the last `N` lines (0 to %d; stdout and stderr together, in order).", bus.MaxLogLines))
	fs.BoolVar(&c.Follow, "f", false, "Follow: print new lines as the bot writes them, until Ctrl+C (across agent restarts).")
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Second, "How long to wait for the agent's first answer.")
	return fs
}

// Usage prints `lifeline logs --help`.
func (c *LogsCommand) Usage() {
	writeHelp(c.env.stdout, "lifeline logs [NAME] [flags]", logsSummary, `Asks the bot's agent over the bus (lifeline.agent.NAME.logs; with -f,
lifeline.agent.NAME.logs-follow). The agent keeps the last 1000 lines of each
stream in memory; the whole log is its --log-file, rotated at --log-max-size.

The bot's stdout lines are printed to stdout and its stderr lines to stderr,
so "2>/dev/null" keeps only stdout; --json prints every line as one JSON
object ({"stream","time","text",...}) on stdout instead.

Logs may hold secrets: only operator logins (and the dashboard) may read them;
a viewer or bot login is refused by the bus.

Examples:
  lifeline logs
  lifeline logs mybot -n 20
  lifeline logs mybot -f
  lifeline logs mybot -f --nats-url nats://dash.example:4222 --nats-nkey operator.nk

Arguments:
  NAME                      The bot (default: bot) ($LIFELINE_NAME).`, (&LogsCommand{}).flagSet(),
		"n", "f", "json", "nats-url", "nats-nkey", "nats-ca", "timeout")
}

// ParseFlags fills c from args and the environment and refuses a bad
// name, n or timeout before connecting.
func (c *LogsCommand) ParseFlags(args []string) error {
	if err := c.parse("logs", c.flagSet(), args, &c.Timeout); err != nil {
		return err
	}
	if c.Lines < 0 || c.Lines > bus.MaxLogLines {
		return usageErr("logs", fmt.Errorf("-n %d: %w", c.Lines, bus.ErrBadLogLines))
	}
	return nil
}

// Run prints the last lines, then with -f follows until ctx is done.
func (c *LogsCommand) Run(ctx context.Context, args []string) error {
	if err := c.ParseFlags(args); err != nil {
		return err
	}
	nc, err := c.connect(c.Timeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	if !c.Follow {
		actx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		r, err := bus.AskLogs(actx, nc, c.Name, c.Lines)
		if err != nil {
			return c.logsFailed(actx, err)
		}
		return c.print(r)
	}
	return c.follow(ctx, nc)
}

// follow asks the agent to stream to an inbox of ours and renews the ask
// every bus.LogsFollowRenew; a renewal reaching a new agent (the old one
// killed) resumes after the last line printed.
func (c *LogsCommand) follow(ctx context.Context, nc *nats.Conn) error {
	inbox := nc.NewInbox()
	msgs := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return c.logsFailed(ctx, err)
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, 64<<20)
	if err := bus.FollowLogs(ctx, nc, c.Name, inbox, bus.LogsRequest{N: c.Lines}); err != nil {
		return c.logsFailed(ctx, err)
	}
	first := time.NewTimer(c.Timeout)
	defer first.Stop()
	renew := time.NewTicker(bus.LogsFollowRenew)
	defer renew.Stop()
	var last time.Time
	answered, stopped := false, false
	for {
		select {
		case <-ctx.Done():
			return nil // Ctrl+C: the agent ends the follow once renewals stop
		case <-first.C:
			if !answered {
				return c.logsFailed(ctx, fmt.Errorf("%w bot %q (no answer in time)", bus.ErrNoAgent, c.Name))
			}
		case <-renew.C:
			if err := bus.FollowLogs(ctx, nc, c.Name, inbox, bus.LogsRequest{Renew: true, Since: last}); err != nil && ctx.Err() == nil {
				fmt.Fprintf(c.env.stderr, "lifeline: renew follow: %v\n", err)
			}
		case m := <-msgs:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				if !answered {
					return c.logsFailed(ctx, fmt.Errorf("%w bot %q", bus.ErrNoAgent, c.Name))
				}
				continue // no agent now: the next renewal tries again
			}
			r, err := bus.DecodeLogsReply(m.Data)
			if err != nil {
				continue
			}
			if !r.OK && !r.End {
				if !answered {
					return advise(fmt.Errorf("logs of %s: %s", c.Name, r.Error), "check with: lifeline status "+c.Name)
				}
				fmt.Fprintf(c.env.stderr, "lifeline: %s\n", r.Error)
				continue
			}
			answered = true
			if stopped && len(r.Lines) > 0 {
				stopped = false
			}
			if err := c.print(r); err != nil {
				return err
			}
			if n := len(r.Lines); n > 0 {
				last = r.Lines[n-1].Time
			}
			if r.End && !stopped {
				// The agent stopped (or the follow expired): renewals go on,
				// and the next agent resumes after the last line printed.
				stopped = true
				fmt.Fprintf(c.env.stderr, "lifeline: the agent of %s stopped following (%s); waiting for it to come back\n", c.Name, orText(r.Error, "expired"))
			}
		}
	}
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// print writes r's lines: stdout lines to stdout, stderr lines and the
// capture's own notes to stderr (or all as JSON on stdout).
func (c *LogsCommand) print(r bus.LogsReply) error {
	if r.Omitted > 0 {
		fmt.Fprintf(c.env.stderr, "lifeline: %d older lines left out (a reply holds at most %d KiB)\n", r.Omitted, bus.MaxLogsBytes>>10)
	}
	// One write per stream and batch, not one per line: at 10,000 lines a
	// second the syscalls would slow the follow.
	stdout, stderr := bufio.NewWriterSize(c.env.stdout, 64<<10), bufio.NewWriterSize(c.env.stderr, 16<<10)
	defer stderr.Flush()
	defer stdout.Flush()
	for _, l := range r.Lines {
		if c.JSON {
			if err := printJSON(stdout, l); err != nil {
				return err
			}
			continue
		}
		var w io.Writer = stdout
		text := l.Text
		switch l.Stream {
		case bus.StreamStdout:
		case bus.StreamStderr:
			w = stderr
		default:
			w, text = stderr, "lifeline: "+text
		}
		end := "\n"
		if l.Cut {
			end = "" // the line goes on in the next piece
		}
		if _, err := io.WriteString(w, text+end); err != nil {
			return fmt.Errorf("write log line: %w", err)
		}
	}
	return nil
}

// logsFailed explains a logs request that got no usable answer.
func (c *LogsCommand) logsFailed(ctx context.Context, err error) error {
	var refused *bus.RefusedError
	if errors.As(err, &refused) {
		return advise(err, "log in as an operator: --nats-nkey FILE with the dashboard's data/bus/operator.nk")
	}
	if errors.Is(err, bus.ErrNoAgent) {
		return advise(fmt.Errorf("no agent answered for bot %q within %v (on %s)", c.Name, c.Timeout, bus.Redact(c.NATSURL)),
			"is it running? check with: lifeline ls, or start one with: lifeline agent --name "+c.Name)
	}
	return c.askFailed(ctx, bus.OpLogs, c.Timeout, err)
}

// sizeFlag is a size in bytes given as 10MB, 512KB or a number.
type sizeFlag int64

func (z *sizeFlag) String() string {
	if z == nil {
		return ""
	}
	switch v := int64(*z); {
	case v > 0 && v%(1<<20) == 0:
		return strconv.FormatInt(v>>20, 10) + "MB"
	case v > 0 && v%(1<<10) == 0:
		return strconv.FormatInt(v>>10, 10) + "KB"
	default:
		return strconv.FormatInt(v, 10)
	}
}

func (z *sizeFlag) Set(s string) error {
	n, err := agent.ParseSize(s)
	if err != nil {
		return err
	}
	*z = sizeFlag(n)
	return nil
}

// countFlag is a positive count.
type countFlag int

func (n *countFlag) String() string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(int(*n))
}

func (n *countFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return fmt.Errorf("%q is not a positive whole number", s)
	}
	*n = countFlag(v)
	return nil
}
