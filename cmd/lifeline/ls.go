package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

const lsSummary = "List every bot whose agent is on the bus: name, state, PID, host, restarts, heartbeat age."

// Bounds of one `lifeline ls`.
const (
	// lsQuiet ends discovery once no agent has answered for this long:
	// agents on one bus answer within a few milliseconds of each other.
	lsQuiet = 150 * time.Millisecond
	// lsDiscoverMax bounds discovery on a busy bus that keeps answering.
	lsDiscoverMax = time.Second
	// lsMaxBots bounds the names one run asks about: any login may answer
	// discovery, in any number.
	lsMaxBots = 100_000
	// lsParallel bounds the status requests in flight at once.
	lsParallel = 256
)

// LsCommand lists every bot the bus knows: `lifeline ls`.
type LsCommand struct {
	env *env

	JSON     bool
	NATSURL  string
	NATSCA   string
	NATSNkey string
	Timeout  time.Duration
}

// flagSet defines ls's flags on c's fields.
func (c *LsCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("ls")
	fs.BoolVar(&c.JSON, "json", false, "Print one JSON array of status objects instead of a table.")
	fs.StringVar(&c.NATSURL, "nats-url", bus.URLs(""), "Bus the agents are connected to; a comma list gives failover; a password login goes in the URL (nats://USER:PASSWORD@host:port), best in $NATS_URL, not in argv; defaults to $NATS_URL, else nats://127.0.0.1:4222.")
	fs.StringVar(&c.NATSNkey, "nats-nkey", "", "Log in to the bus with the nkey seed in `FILE`; default: ./data/bus/operator.nk when the bus is on loopback and that file exists.")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "Trust the bus's TLS certificate when signed by the CA in `FILE` (PEM).")
	fs.DurationVar(&c.Timeout, "timeout", 3*time.Second, "How long to wait in all: for agents to answer discovery (at most 1s) and then for their statuses.")
	return fs
}

// Usage prints `lifeline ls --help`.
func (c *LsCommand) Usage() {
	writeHelp(c.env.stdout, "lifeline ls [flags]", lsSummary, `Finds the agents on the bus with NATS service discovery ($SRV.INFO.lifeline-agent),
then asks each bot's agent for its status (lifeline.agent.NAME.status), all at
once. Problems come first (hung, backoff, unknown, no agent, starting, stopping,
stopped), then running bots; by name within each. A bot whose agent answered
discovery but not its status in time shows as unknown. A bot with no agent at
all is not listed: nothing on the bus answers for it (the dashboard's page shows
it from its heartbeats).

Columns: NAME, STATE, PID, HOST, RESTARTS, HEARTBEAT (age of the last
heartbeat). With no bots, the header alone is printed and "no bots found" goes
to stderr; the exit status is 0 either way.

Examples:
  lifeline ls
  lifeline ls --json
  lifeline ls --json | jq -r '.[] | select(.state != "running") | .name'
  lifeline ls --nats-url nats://dash.example:4222 --nats-nkey viewer.nk

A viewer login is enough: ls only reads. Beside a dashboard started in the same
directory it logs in with ./data/bus/operator.nk by itself.`, (&LsCommand{}).flagSet(), "json", "nats-url", "nats-nkey", "nats-ca", "timeout")
}

// ParseFlags fills c from args and the LIFELINE_* environment.
func (c *LsCommand) ParseFlags(args []string) error {
	rest, err := parseArgs(c.flagSet(), args, true)
	if err != nil {
		return usageErr("ls", err)
	}
	if len(rest) > 0 {
		return usageErr("ls", fmt.Errorf("unexpected argument %q: ls takes no bot name (see: lifeline status NAME)", rest[0]))
	}
	if c.Timeout <= 0 {
		return usageErr("ls", fmt.Errorf("--timeout %v: must be a positive duration such as 3s", c.Timeout))
	}
	c.NATSURL = bus.URLs(c.NATSURL)
	return nil
}

// Run discovers the agents, asks each for its bot's status and prints them.
func (c *LsCommand) Run(ctx context.Context, args []string) error {
	if err := c.ParseFlags(args); err != nil {
		return err
	}
	cf := clientFlags{env: c.env, NATSURL: c.NATSURL, NATSCA: c.NATSCA, NATSNkey: c.NATSNkey}
	nc, err := cf.connect(c.Timeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()

	found, err := discoverAgents(ctx, nc, min(lsDiscoverMax, c.Timeout/2))
	if err != nil {
		return advise(fmt.Errorf("discover agents on %s: %w", bus.Redact(c.NATSURL), err),
			"log in as an operator or a viewer (--nats-nkey FILE)")
	}
	list, err := askAll(ctx, nc, found)
	if err != nil {
		return err
	}
	sortProblemsFirst(list)
	if c.JSON {
		if list == nil {
			list = []bus.Status{}
		}
		return printJSON(c.env.stdout, list)
	}
	writeTable(c.env.stdout, list)
	if len(list) == 0 {
		fmt.Fprintf(c.env.stderr, "lifeline: no bots found: no agent answered on %s\n", bus.Redact(c.NATSURL))
	}
	return nil
}

// agentLead is what a discovery reply says about one bot. Anyone may answer
// discovery, so it is only a lead: the status comes from the bot's own
// subject, where only its agent's login may answer.
type agentLead struct {
	name, host string
	agentPID   int
}

// discoverAgents sends one INFO request to every lifeline-agent service and
// gathers the replies until none has come for lsQuiet, at most for window.
// A bus with no agent at all answers "no responders" at once.
func discoverAgents(ctx context.Context, nc *nats.Conn, window time.Duration) (map[string]agentLead, error) {
	subject, err := micro.ControlSubject(micro.InfoVerb, bus.AgentService, "")
	if err != nil {
		return nil, fmt.Errorf("discovery subject: %w", err)
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("subscribe to replies: %w", err)
	}
	defer sub.Unsubscribe()
	before := nc.LastError()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("send discovery: %w", err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return nil, fmt.Errorf("send discovery: %w", err)
	}
	if last := nc.LastError(); last != before && errors.Is(last, nats.ErrPermissionViolation) {
		return nil, &bus.RefusedError{Login: bus.LoginOf(nc), Subject: inbox, Inbox: true}
	}
	found := make(map[string]agentLead)
	end := time.Now().Add(window)
	quiet := window // until the first answer, wait the whole window
	for len(found) < lsMaxBots {
		wait := min(quiet, time.Until(end))
		if wait <= 0 {
			break
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			break // quiet long enough, or the window is over
		}
		if msg.Header.Get("Status") == "503" {
			break // no responders: no agent on this bus
		}
		quiet = lsQuiet
		var info micro.Info
		if json.Unmarshal(msg.Data, &info) != nil {
			continue
		}
		name := info.Metadata["name"]
		if bus.ValidName(name) != nil {
			continue
		}
		pid, _ := strconv.Atoi(info.Metadata["pid"])
		found[name] = agentLead{name: name, host: printable(info.Metadata["host"], 253), agentPID: pid}
	}
	return found, nil
}

// askAll asks the agent of every found bot for its status, lsParallel at a
// time. The first request goes alone, through bus.AskStatus, which tells a
// refusal by the bus at once: then no request of this login can succeed,
// and the run ends. The others share one reply subscription, so a fleet
// costs no subscription per bot. A bot whose agent does not answer is
// listed as unknown with what discovery said.
func askAll(ctx context.Context, nc *nats.Conn, found map[string]agentLead) ([]bus.Status, error) {
	leads := slices.SortedFunc(maps.Values(found), func(a, b agentLead) int { return strings.Compare(a.name, b.name) })
	out := make([]bus.Status, len(leads))
	unknown := func(l agentLead) bus.Status {
		return bus.Status{Name: l.name, State: bus.StateUnknown, Host: l.host, Agent: bus.AgentInfo{PID: l.agentPID, Host: l.host}}
	}
	if len(leads) == 0 {
		return nil, nil
	}
	st, err := bus.AskStatus(ctx, nc, leads[0].name)
	if errors.As(err, new(*bus.RefusedError)) {
		return nil, advise(err, "log in as an operator or a viewer (--nats-nkey FILE)")
	}
	if err != nil || st.Name != leads[0].name {
		st = unknown(leads[0])
	}
	out[0] = st
	var wg sync.WaitGroup
	slots := make(chan struct{}, lsParallel)
	for i, lead := range leads[1:] {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			out[i+1] = unknown(lead)
			msg, err := nc.RequestWithContext(ctx, bus.AgentSubject(lead.name, bus.OpStatus), bus.Encode(bus.Request{}))
			if err != nil {
				return
			}
			if st, err := bus.DecodeStatus(msg.Data); err == nil && st.Name == lead.name {
				out[i+1] = st
			}
		})
	}
	wg.Wait()
	return out, nil
}

// problemRank orders states for people who look for trouble: the worst
// first, running last. The page orders its list the same way.
func problemRank(st bus.Status) int {
	switch st.State {
	case bus.StateHung:
		return 0
	case bus.StateBackoff:
		return 1
	case bus.StateStarting, bus.StateStopping, bus.StateStopped, bus.StateRunning:
	default:
		return 2 // unknown, or a state this version does not know
	}
	if !st.Agent.Connected || st.Problem != "" {
		return 3
	}
	switch st.State {
	case bus.StateStarting:
		return 4
	case bus.StateStopping:
		return 5
	case bus.StateStopped:
		return 6
	}
	return 8
}

// sortProblemsFirst sorts list by problemRank, then by name.
func sortProblemsFirst(list []bus.Status) {
	slices.SortFunc(list, func(a, b bus.Status) int {
		return cmp.Or(cmp.Compare(problemRank(a), problemRank(b)), strings.Compare(a.Name, b.Name))
	})
}

// writeTable prints list as aligned columns under a header.
func writeTable(w io.Writer, list []bus.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPID\tHOST\tRESTARTS\tHEARTBEAT")
	for _, st := range list {
		state := string(st.State)
		if !st.Agent.Connected && st.State != bus.StateUnknown {
			state += " (no agent)"
		}
		pid, host, hb := "-", "-", "-"
		if st.PID > 0 {
			pid = strconv.Itoa(st.PID)
		}
		if st.Host != "" {
			host = st.Host
		}
		if st.HeartbeatAgeMS != nil {
			hb = roughly(time.Duration(*st.HeartbeatAgeMS)*time.Millisecond) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", st.Name, printable(state, 64), pid, printable(host, 253), st.Restarts, hb)
	}
	tw.Flush()
}

// printable keeps text from the bus fit for a terminal: no control
// characters (escape sequences) and no tabs that would break the columns.
func printable(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, s)
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "")
	}
	return s
}
