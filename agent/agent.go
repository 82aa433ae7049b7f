package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/sdnotify"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ErrAnotherAgent means another agent already supervises the bot, on this
// host (it holds the agent lock) or elsewhere on the bus.
var ErrAnotherAgent = errors.New("another agent already supervises this bot")

// Agent supervises the bot called Name. The zero durations are replaced by
// the Default* values, except HeartbeatTimeout, where zero turns hang
// detection off for programs that cannot send heartbeats.
type Agent struct {
	Name    string
	NATSURL string // comma-separated list for failover
	// NATSCA is a PEM file of the CA that signed the bus's TLS certificate,
	// for a bus with a private CA; the demo bot it starts gets it too
	// (LIFELINE_NATS_CA).
	NATSCA string
	// Login is how the agent logs in to the bus (see bus.ResolveLogin).
	Login bus.Login
	// BotLogin is the login the agent hands its bot, in the environment
	// (bus.EnvSeed): a bot login's, so the bot cannot act as the agent. It
	// is held from the start, so a bot respawned after its data directory
	// vanished still logs in. Zero hands none.
	BotLogin bus.Login
	PIDFile  string
	LogFile  string // the bot's stdout and stderr; empty discards them
	// LogMaxSize is the size in bytes at which LogFile is rotated (default
	// DefaultLogMaxSize), LogKeep how many rotated files are kept (default
	// DefaultLogKeep); LogTimestamps prefixes each line with its time.
	LogMaxSize    int64
	LogKeep       int
	LogTimestamps bool

	// Dir is the bot's working directory; empty: the agent's.
	Dir string
	// Env is added to the environment the bot inherits ("KEY=value"); the
	// agent's own LIFELINE_* variables still win.
	Env []string

	// Command runs the bot; when empty the agent runs Self's `bot`
	// sub-command, the built-in demo bot.
	Command []string
	Self    string

	HeartbeatTimeout time.Duration
	StartTimeout     time.Duration
	StopTimeout      time.Duration
	BackoffMin       time.Duration
	BackoffMax       time.Duration
	BackoffReset     time.Duration

	// StopBotOnExit stops the bot when the agent stops; by default the bot
	// outlives its agent and the next agent adopts it.
	StopBotOnExit bool

	// RequireHeartbeat treats a Command bot that never heartbeats as hung,
	// as the demo bot is: it stays starting until its first heartbeat, for
	// at most StartTimeout. Without it a Command bot runs at once, and hang
	// detection arms only when the bot shows it can heartbeat (a bus
	// heartbeat, WATCHDOG=1, or READY=1 while it was given WATCHDOG_USEC),
	// so a program that sends none is not killed for it.
	RequireHeartbeat bool
	// Ready is "" or ReadyNotify: with ReadyNotify a Command bot counts as
	// starting until it sends READY=1 (sd_notify), for at most StartTimeout.
	// Without it the agent waits for READY=1 only once an earlier process of
	// the bot has sent one.
	Ready string

	Version string
	Logger  *slog.Logger

	// OnStarted, when set, is called once Run has passed its checks and is
	// about to supervise: the moment for process-wide tidying that a library
	// must not do on its own (cmd/lifeline releases its startup pages). A
	// Fleet calls its own OnStarted instead.
	OnStarted func()
	// OnBotRunning, when set, is called each time a started, restarted or
	// respawned bot counts as running. It runs on the agent's one loop, so
	// it must return at once; hand anything slow to a goroutine.
	OnBotRunning func()
}

// agentLockPath is the agent's own PID file, beside the bot's; holding it
// keeps a second agent for the same bot on this host from starting.
func agentLockPath(pidPath string) string {
	return strings.TrimSuffix(pidPath, ".pid") + ".agent.pid"
}

// Run supervises the bot until ctx is done. It returns nil on a clean stop.
// It is a Fleet of one bot: the same checks, connection and loop.
func (a *Agent) Run(ctx context.Context) error {
	cfg := a.withDefaults()
	f := &Fleet{
		NATSURL:   cfg.NATSURL,
		NATSCA:    cfg.NATSCA,
		Login:     cfg.Login,
		ConnName:  "lifeline-agent " + cfg.Name,
		Logger:    a.Logger,
		Bots:      []Agent{*a},
		OnStarted: a.OnStarted,
	}
	return f.Run(ctx)
}

// checkNoOtherAgent asks the bus whether an agent already answers for name.
// An unreachable bus is not an error: the bot must be kept alive regardless.
func checkNoOtherAgent(nc *nats.Conn, name string) error {
	if !nc.IsConnected() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	// Our own service is not registered yet, so any answer is another agent's.
	st, err := bus.AskStatus(ctx, nc, name)
	if err != nil {
		return nil
	}
	return fmt.Errorf("%w %q: agent pid %d on %s answers on the bus", ErrAnotherAgent, name, st.Agent.PID, st.Agent.Host)
}

// A newly registered agent waits rivalSettle before it looks for rivals on
// the bus, then collects answers for rivalWindow. The wait is far longer than
// a rival that passed checkNoOtherAgent at the same moment takes to
// register, so that two agents started together each see the other.
const (
	rivalSettle = 150 * time.Millisecond
	rivalWindow = 150 * time.Millisecond
)

// request is a restart, stop, start or status request waiting for the loop.
type request struct {
	op  string
	req bus.Request
	msg micro.Request
}

// operation is the restart, stop or start in progress; requests for the same
// operation that arrive meanwhile join it and get the same truthful answer.
type operation struct {
	op     string
	reqs   []*request
	oldPID int
	begun  time.Time
	phase  opPhase
}

// opPhase is the half of an operation in progress. A stop only stops, a
// start only starts, and a restart stops the old bot and then starts the
// new one: all three are told apart by phase alone (see inPhase).
type opPhase int

const (
	opStopping opPhase = iota + 1 // waiting for the old bot to exit
	opStarting                    // waiting for the new bot's first heartbeat
)

// inPhase reports whether an operation is in progress and in phase ph.
func (s *supervisor) inPhase(ph opPhase) bool {
	return s.op != nil && s.op.phase == ph
}

func (o *operation) by() string {
	var names []string
	seen := map[string]bool{}
	for _, r := range o.reqs {
		n := bus.Attribute(bus.LoginFromInbox(r.msg.Reply()), r.req.RequestedBy)
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

type shutdownAck struct {
	p  *proc
	ok bool
}

// serve registers the bot's lifeline-agent service and its endpoints.
func (s *supervisor) serve(r *responder) (*botService, error) {
	host, _ := os.Hostname()
	var eps []serviceEndpoint
	for _, op := range []string{bus.OpStatus, bus.OpRestart, bus.OpStop, bus.OpStart} {
		eps = append(eps, serviceEndpoint{name: op, subject: bus.AgentSubject(s.cfg.Name, op),
			metadata: map[string]string{"name": s.cfg.Name}, handler: s.handler(op)})
	}
	// The log endpoints answer from memory, off the loop (see logs.go).
	for _, ep := range []struct {
		op string
		h  func(micro.Request)
	}{{bus.OpLogs, s.handleLogs}, {bus.OpLogsFollow, s.handleFollow}} {
		eps = append(eps, serviceEndpoint{name: ep.op, subject: bus.AgentSubject(s.cfg.Name, ep.op),
			metadata: map[string]string{"name": s.cfg.Name}, handler: ep.h})
	}
	return r.addService(bus.ServiceVersion(s.cfg.Version), "lifeline agent supervising bot "+s.cfg.Name,
		map[string]string{"name": s.cfg.Name, "host": host, "pid": fmt.Sprint(os.Getpid())}, eps)
}

// handler decodes a request and hands it to the loop without waiting, so a
// slow restart never holds up the next request (which may join it).
func (s *supervisor) handler(op string) func(micro.Request) {
	return func(m micro.Request) {
		req, err := bus.DecodeRequest(m.Data())
		if err != nil {
			respondErr(m, "400", err.Error())
			return
		}
		// Never blocks: every bot of a fleet is served by one goroutine.
		select {
		case <-s.done:
			respondErr(m, "503", "agent is shutting down")
		case s.reqs <- &request{op: op, req: req, msg: m}:
		default:
			respondErr(m, "503", "agent is busy: too many requests waiting")
		}
	}
}

func respondErr(m micro.Request, code, msg string) {
	_ = m.Error(code, msg, bus.Encode(bus.Reply{Error: msg}))
}

// supervisor is the state of one agent. Only the loop goroutine touches it;
// everything else talks to the loop through channels.
type supervisor struct {
	cfg  *Agent
	log  *slog.Logger
	nc   *nats.Conn
	host string

	state       bus.State
	want        bool // the operator wants the bot running
	p           *proc
	restarts    int
	startedOnce bool
	lastExit    *bus.Exit
	streak      int
	nextStart   time.Time
	problem     string

	connectedSince time.Time
	// hb is the connection heartbeats come over, lazy its dialer (nil when
	// hb is nc): see lazyconn_unix.go.
	hb   *nats.Conn
	lazy *lazyDialer
	// eager is set while this bot starts: hb is then read at once.
	eager   bool
	op      *operation
	queue   []*request
	exiting bool
	// stopBot makes this exit stop the bot as StopBotOnExit would: the bot
	// was removed from a Fleet, or changed and so restarted. Set before the
	// loop's context ends, read by the loop when it does.
	stopBot  atomic.Bool
	exitBy   time.Time
	finished bool

	hangT, backoffT, escalateT *time.Timer

	logs botLogs // the bot's output (see logs.go)

	// notify is the bot's sd_notify socket, nil where there is none;
	// speaksNotify is set once a process of the bot has sent READY=1.
	notify       *sdnotify.Socket
	speaksNotify bool
	// noNotify is the Fleet's: where there is no sd_notify, it is said once
	// per agent, not once per bot.
	noNotify *sync.Once

	// A wait in progress (see waitKind) and what it goes on with.
	waiting    waitKind
	waitT      *time.Timer
	lookTries  int
	lookErr    error
	lookThen   func(*proc, error)
	lookLater  []func(*proc, error)
	unlockExit exitInfo
	unlockBy   time.Time

	exits chan exitInfo
	// beats is fed by the bus client's reader itself (a chan subscription
	// to the bot's heartbeat subject), so that a heartbeat wakes only this
	// loop: 100 bots at 1 Hz are 100 wake-ups a second, and each goroutine
	// passed on the way cost as much again. When it is full the client
	// drops the message; a later heartbeat says the same.
	beats chan *nats.Msg
	conns chan struct{}
	reqs  chan *request
	acks  chan shutdownAck
	done  chan struct{}
	wg    sync.WaitGroup
}

func newSupervisor(cfg *Agent) *supervisor {
	host, _ := os.Hostname()
	return &supervisor{
		cfg:   cfg,
		log:   cfg.Logger,
		host:  host,
		state: bus.StateStopped,
		want:  true,
		exits: make(chan exitInfo, 4),
		beats: make(chan *nats.Msg, 32),
		conns: make(chan struct{}, 1),
		reqs:  make(chan *request, 64),
		acks:  make(chan shutdownAck, 4),
		done:  make(chan struct{}),
	}
}

// syncEager has the heartbeat connection read at once while this bot
// starts: its first heartbeat ends the start, and a restart or a respawn
// waits for it.
func (s *supervisor) syncEager() {
	want := s.state == bus.StateStarting
	if s.lazy == nil || want == s.eager {
		return
	}
	s.eager = want
	if want {
		s.lazy.hurry()
	} else {
		s.lazy.calm()
	}
}

func (s *supervisor) notifyConn() {
	select {
	case s.conns <- struct{}{}:
	default:
	}
}

// onHeartbeatMsg takes a heartbeat message off the bus, on the loop.
func (s *supervisor) onHeartbeatMsg(m *nats.Msg) {
	hb, err := bus.DecodeHeartbeat(m.Data)
	if err != nil || hb.Name != s.cfg.Name {
		s.log.Debug("ignore bad heartbeat", "err", err)
		return
	}
	s.onHeartbeat(hb)
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// waitKind names a wait of the loop: a poll of the PID file, spaced by the
// wait timer. While one is in progress the loop takes no other event; they
// keep in their channels, in order, and are handled once it ends, so each
// sees the state a wait that blocked would have left.
type waitKind int

const (
	waitNone       waitKind = iota
	waitPIDWritten          // a look found the PID file locked but not yet written
	waitUnlocked            // an exited bot's group still holds the PID file's lock
)

func (s *supervisor) waitFor(k waitKind, d time.Duration) {
	s.waiting = k
	s.waitT = time.NewTimer(d)
}

// onWaitTimer polls again for the wait in progress, then begins the looks
// that were asked for while it lasted.
func (s *supervisor) onWaitTimer() {
	k := s.waiting
	s.waiting = waitNone
	switch k {
	case waitPIDWritten:
		if s.lookTries < pidWrittenTries {
			s.readPIDFile()
		} else {
			s.endLook(s.findRunning(0, s.lookErr))
		}
	case waitUnlocked:
		s.checkUnlocked()
	}
	for len(s.lookLater) > 0 && s.waiting == waitNone {
		then := s.lookLater[0]
		s.lookLater = s.lookLater[1:]
		s.lookFor(then)
	}
}

// run is the one loop that owns the supervisor's state.
func (s *supervisor) run(ctx context.Context) {
	s.openLogs()
	defer s.closeLogs() // after the deferred func below: the bot has exited or stays
	defer func() {
		close(s.done)
		if s.p != nil {
			s.p.watch.close()
		}
		stopTimer(&s.hangT)
		stopTimer(&s.backoffT)
		stopTimer(&s.escalateT)
		stopTimer(&s.waitT)
		s.wg.Wait()
		if s.notify != nil {
			_ = s.notify.Close()
		}
	}()
	s.openNotify()
	s.onConn()
	s.start("initial start", "")
	ctxDone := ctx.Done()
	var exitDeadline <-chan time.Time
	defer func() {
		if s.eager {
			s.lazy.calm()
		}
	}()
	for !s.finished {
		s.syncEager()
		if s.waiting != waitNone {
			<-s.waitT.C
			s.waitT = nil
			s.onWaitTimer()
			continue
		}
		select {
		case <-ctxDone:
			ctxDone = nil
			s.beginExit()
			if !s.finished {
				t := time.NewTimer(s.cfg.StopTimeout + 2*time.Second)
				defer t.Stop()
				exitDeadline = t.C
			}
		case <-exitDeadline:
			s.log.Error("bot did not exit after SIGKILL; leaving it", "pid", s.p.pid)
			s.finished = true
		case e := <-s.exits:
			s.onExit(e)
		case m := <-s.beats:
			s.onHeartbeatMsg(m)
		case m := <-s.notifyC():
			s.onNotify(m)
		case <-s.conns:
			s.onConn()
		case r := <-s.reqs:
			s.onRequest(r)
		case a := <-s.acks:
			s.onShutdownAck(a)
		case <-timerC(s.hangT):
			s.hangT = nil
			s.onHangTimer()
		case <-timerC(s.backoffT):
			s.backoffT = nil
			s.start("respawn after backoff", "")
		case <-timerC(s.escalateT):
			s.escalateT = nil
			s.onEscalate()
		}
	}
}

func (s *supervisor) beginExit() {
	s.exiting = true
	for _, r := range s.queue {
		respondErr(r.msg, "503", "agent is shutting down")
	}
	s.queue = nil
	if s.op != nil {
		s.finishOp(bus.Reply{Error: "agent is shutting down"})
	}
	if !(s.cfg.StopBotOnExit || s.stopBot.Load()) || s.p == nil {
		if s.p != nil {
			s.log.Info("agent exiting; bot keeps running", "pid", s.p.pid)
		}
		s.finished = true
		return
	}
	s.want = false
	s.beginStop(s.p, stopAgentExiting)
}

func (s *supervisor) onConn() {
	if s.nc == nil {
		return
	}
	if s.nc.IsConnected() && (s.hb == nil || s.hb.IsConnected()) {
		if s.connectedSince.IsZero() {
			s.connectedSince = time.Now()
			s.log.Info("connected to bus", "url", s.nc.ConnectedUrlRedacted())
		}
	} else if !s.connectedSince.IsZero() {
		s.connectedSince = time.Time{}
		s.log.Warn("bus connection lost; hang detection paused until it is back")
	}
	s.armHang()
}

func (s *supervisor) emit(typ bus.EventType, pid int, reason, by string) {
	ev := bus.Event{Time: time.Now().UTC(), Name: s.cfg.Name, Type: typ, PID: pid, Reason: reason, RequestedBy: by}
	s.log.Info("bot "+string(typ), "pid", pid, "reason", reason, "requested_by", by)
	if s.nc == nil {
		return // unit tests of the state machine run without a bus
	}
	if err := s.nc.Publish(bus.EventsSubject(s.cfg.Name), bus.Encode(ev)); err != nil {
		s.log.Warn("publish event", "err", err)
	}
}
