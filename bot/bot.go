// Package bot is lifeline's bot SDK and its built-in demo bot. A Bot holds
// its PID file, publishes heartbeats that prove its work loop is making
// progress, and obeys shutdown requests over the bus; the work itself is a
// Worker.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Defaults for Bot's timing fields.
const (
	DefaultHeartbeat = time.Second
	DefaultPoll      = 200 * time.Millisecond
)

// drainWait bounds how long a stopping bot waits for its bus connection to
// flush; a bus that is down must not keep the process from exiting.
const drainWait = 5 * time.Second

// Worker is the work a Bot does.
type Worker interface {
	// Step does one bounded unit of work (poll once, process at most one item) and reports whether
	// there is more to do at once (true) or it should wait for the next poll tick (false).
	Step(ctx context.Context) (more bool, err error)
	// Stats returns counters to ride on heartbeats; called from the work loop only.
	Stats() map[string]int64
}

// EnvNkey names the seed file a bot logs in with; an agent sets it for the
// bots it starts.
const EnvNkey = "LIFELINE_NATS_NKEY"

// Bot runs a Worker under lifeline's bot protocol. Set the fields, then call
// Run.
type Bot struct {
	// Name is the bot's name on the bus (see bus.ValidName).
	Name string
	// NATSURL is a comma-separated list of bus URLs.
	NATSURL string
	// NATSCA is a PEM file of the CA that signed the bus's TLS certificate,
	// for a bus with a private CA.
	NATSCA string
	// Login is how the bot logs in to the bus (see bus.ResolveLogin); when
	// zero, the seed an agent hands its bot ($LIFELINE_NATS_SEED), else the
	// seed file $LIFELINE_NATS_NKEY names, else ./data/bus/bot.nk on a
	// loopback bus.
	Login bus.Login
	// PIDFile is the path of the bot's PID file. If the environment names an
	// inherited descriptor (pidfile.EnvFD), that descriptor must be this file.
	PIDFile string
	// Heartbeat is the interval between heartbeats (DefaultHeartbeat if zero).
	Heartbeat time.Duration
	// Poll is how long to wait after a Step that found nothing more to do
	// (DefaultPoll if zero).
	Poll time.Duration
	// Version is reported on heartbeats and, if it is semver, to the micro
	// service (which otherwise gets 0.0.0-dev).
	Version string
	// Logger receives the bot's logs (slog.Default() if nil).
	Logger *slog.Logger
	// Worker does the work.
	Worker Worker
}

// Run takes the PID file, connects to the bus, registers the lifeline-bot
// service and runs the work loop until ctx is cancelled or a shutdown
// request arrives. Both stop it gracefully: the Step in hand finishes, the PID
// file is removed, and Run returns nil.
//
// If another live process holds the PID file, Run returns an error wrapping
// a *pidfile.LockedError. The bus being unreachable is not an error: the bot
// works without it and reconnects in the background.
func (b *Bot) Run(ctx context.Context) error {
	if err := bus.ValidName(b.Name); err != nil {
		return err
	}
	if b.Worker == nil {
		return errors.New("bot has no worker")
	}
	if b.PIDFile == "" {
		return errors.New("bot has no pid file path")
	}
	log := b.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("bot", b.Name)

	pf, err := b.lockPIDFile()
	if err != nil {
		return err
	}
	pid := os.Getpid()
	if err := pf.WritePID(pid); err != nil {
		removePIDFile(pf, log)
		return err
	}
	host, _ := os.Hostname()

	closed := make(chan struct{})
	connected := func(c *nats.Conn) { log.Info("connected to bus", "url", c.ConnectedUrlRedacted()) }
	opts := []nats.Option{
		// A heartbeat vouches for progress made just now; buffered ones
		// delivered after a reconnect would vouch for the past, so
		// publishes while disconnected are dropped instead.
		nats.ReconnectBufSize(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if !c.IsClosed() {
				log.Warn("disconnected from bus", "err", err)
			}
		}),
		nats.ConnectHandler(connected),
		nats.ReconnectHandler(connected),
	}
	if b.NATSCA != "" {
		opts = append(opts, nats.RootCAs(b.NATSCA))
	}
	login := b.Login
	if login == (bus.Login{}) {
		// Under an agent, the login it hands its bot; beside a dashboard,
		// its bot seed: an SDK bot needs no login code of its own.
		if seed := os.Getenv(bus.EnvSeed); seed != "" {
			login, err = bus.LoginFromSeed(seed)
		} else {
			login, err = bus.ResolveLogin(bus.URLs(b.NATSURL), os.Getenv(EnvNkey), bus.LoginBot)
		}
		if err != nil {
			removePIDFile(pf, log)
			return err
		}
	}
	lopts, err := login.Options()
	if err != nil {
		removePIDFile(pf, log)
		return err
	}
	nc, err := bus.Connect(bus.URLs(b.NATSURL), "lifeline-bot "+b.Name, true, append(opts, lopts...)...)
	if err != nil {
		removePIDFile(pf, log)
		return err
	}

	stop := make(chan struct{})
	svc, err := b.addService(nc, pid, host, log, sync.OnceFunc(func() { close(stop) }))
	if err != nil {
		removePIDFile(pf, log)
		closeConn(nc, closed, log)
		return err
	}

	log.Info("bot started", "pid", pid, "pid_file", b.PIDFile, "nats_url", bus.Redact(bus.URLs(b.NATSURL)))
	b.loop(ctx, stop, log, func(seq uint64, started time.Time, stats map[string]int64) {
		hb := bus.Heartbeat{
			Name: b.Name, PID: pid, Host: host, Seq: seq,
			Time: time.Now().UTC(), StartedAt: started, Version: b.Version, Stats: stats,
		}
		if err := nc.Publish(bus.HeartbeatSubject(b.Name), bus.Encode(hb)); err != nil {
			log.Debug("heartbeat not sent", "seq", seq, "err", err)
		}
	})

	if err := svc.Stop(); err != nil {
		log.Warn("stop bot service", "err", err)
	}
	removePIDFile(pf, log)
	closeConn(nc, closed, log)
	log.Info("bot stopped", "pid", pid)
	return nil
}

// addService registers the lifeline-bot micro service, whose shutdown
// endpoint answers and then calls stop.
func (b *Bot) addService(nc *nats.Conn, pid int, host string, log *slog.Logger, stop func()) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        bus.BotService,
		Version:     bus.ServiceVersion(b.Version),
		Description: "lifeline bot " + b.Name,
		Metadata:    map[string]string{"name": b.Name, "pid": strconv.Itoa(pid), "host": host},
	})
	if err != nil {
		return nil, fmt.Errorf("register bot service: %w", err)
	}
	shutdown := func(req micro.Request) {
		r, err := bus.DecodeRequest(req.Data())
		if err != nil {
			msg := err.Error()
			log.Warn("refused shutdown request", "err", err)
			_ = req.Error("400", msg, bus.Encode(bus.Reply{Error: msg}))
			return
		}
		log.Info("shutdown requested", "requested_by", r.RequestedBy)
		if err := req.Respond(bus.Encode(bus.Reply{OK: true, PID: pid})); err != nil {
			log.Warn("answer shutdown request", "err", err)
		}
		stop()
	}
	err = svc.AddEndpoint("shutdown", micro.HandlerFunc(shutdown), micro.WithEndpointSubject(bus.ShutdownSubject(b.Name)))
	if err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("register shutdown endpoint: %w", err)
	}
	return svc, nil
}

// loop runs the Worker until ctx is done or stop is closed. Heartbeats go
// out from this same loop, between Steps, so they stop when a Step hangs:
// a heartbeat proves progress, not just a live process.
func (b *Bot) loop(ctx context.Context, stop <-chan struct{}, log *slog.Logger, beat func(uint64, time.Time, map[string]int64)) {
	every, poll := b.Heartbeat, b.Poll
	if every <= 0 {
		every = DefaultHeartbeat
	}
	if poll <= 0 {
		poll = DefaultPoll
	}
	// A graceful stop lets the Step in hand finish, so Steps never see the
	// cancellation of ctx.
	workCtx := context.WithoutCancel(ctx)
	started := time.Now().UTC()
	var seq uint64
	var stepErrors int64
	var lastErr string
	heartbeat := func() {
		seq++
		stats := maps.Clone(b.Worker.Stats())
		if stats == nil {
			stats = map[string]int64{}
		}
		stats["step_errors"] = stepErrors
		beat(seq, started, stats)
	}

	heartbeat() // at once: supervisors wait for the first one
	tick := time.NewTicker(every)
	defer tick.Stop()
	wait := time.NewTimer(poll)
	defer wait.Stop()
	now := make(chan time.Time)
	close(now)
	ready := (<-chan time.Time)(now)

	for {
		// Stopping and heartbeats come before more work, so a worker that
		// always has more to do can neither delay a stop nor starve
		// heartbeats.
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
			heartbeat()
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
			heartbeat()
		case <-ready:
			more, err := b.Worker.Step(workCtx)
			if err != nil {
				stepErrors++
				// A failing item fails again on every poll; say so once.
				if msg := err.Error(); msg != lastErr {
					log.Warn("step failed", "err", err)
					lastErr = msg
				} else {
					log.Debug("step failed", "err", err)
				}
			}
			if more {
				ready = now
			} else {
				wait.Reset(poll)
				ready = wait.C
			}
		}
	}
}

// lockPIDFile takes over the descriptor (on Windows, the handle) the agent
// locked for this bot, when the environment names one, and otherwise locks
// the PID file itself.
func (b *Bot) lockPIDFile() (*pidfile.File, error) {
	if v := os.Getenv(pidfile.EnvFD); v != "" {
		// The claim is this process's alone; the bot's own children must
		// not try to take it over.
		os.Unsetenv(pidfile.EnvFD)
		fd, err := pidfile.ParseFD(v)
		if err != nil {
			return nil, err
		}
		return pidfile.Inherit(fd, b.PIDFile)
	}
	pf, err := pidfile.Acquire(b.PIDFile)
	if err != nil {
		return nil, fmt.Errorf("lock pid file: %w", err)
	}
	return pf, nil
}

func removePIDFile(pf *pidfile.File, log *slog.Logger) {
	if err := pf.Remove(); err != nil {
		log.Warn("remove pid file", "path", pf.Path(), "err", err)
	}
}

// closeConn drains nc so the shutdown reply and the last heartbeat get out,
// and waits until it is closed, or at most drainWait.
func closeConn(nc *nats.Conn, closed <-chan struct{}, log *slog.Logger) {
	if err := nc.Drain(); err != nil {
		// Not connected: Drain has closed the connection already.
		log.Debug("drain bus connection", "err", err)
	}
	t := time.NewTimer(drainWait)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		log.Warn("bus connection did not drain in time")
		nc.Close()
	}
}
