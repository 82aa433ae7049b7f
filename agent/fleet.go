package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/shirou/gopsutil/v4/process"
)

// Why a set of bots cannot be supervised together.
var (
	ErrDuplicateBot     = errors.New("is named twice")
	ErrDuplicatePIDFile = errors.New("is the pid file of two bots")
	ErrNotRunning       = errors.New("the agent is not running")
)

// Fleet supervises many bots in one process over one bus connection. Each
// bot keeps everything a lone agent has (its own loop, PID file, agent lock,
// log, timings, backoff, subjects and micro service), so one bot's trouble
// reaches no other; only the connection is shared. Agent.Run is a Fleet of
// one.
type Fleet struct {
	// The bus connection's settings; each bot's own NATSURL, NATSCA and
	// BotLogin are what its process is handed.
	NATSURL string
	NATSCA  string
	Login   bus.Login
	// ConnName names the connection on the bus; default "lifeline-agent".
	ConnName string
	Logger   *slog.Logger

	// Bots are supervised from the start; Reload replaces them.
	Bots []Agent

	// OnStarted, when set, is called once Run has passed its checks and is
	// about to supervise (see Agent.OnStarted).
	OnStarted func()

	mu      sync.Mutex // guards nc, hb, lazy, resp, members and ctx once Run has begun
	nc      *nats.Conn
	hb      *nats.Conn  // the heartbeats' connection (see heartbeatConn)
	lazy    *lazyDialer // hb's dialer, nil when hb is nc
	resp    *responder
	ctx     context.Context
	members map[string]*member
	// reload serialises Reload calls: each one sees the bots the last left.
	reload sync.Mutex
	// noNotify says once per agent that sd_notify is not available here.
	noNotify sync.Once
}

// member is one supervised bot of a Fleet.
type member struct {
	cfg    Agent // with its defaults filled in
	lock   *pidfile.File
	s      *supervisor
	sub    *nats.Subscription
	svc    *botService
	cancel context.CancelFunc
	done   chan struct{}
}

// prepare fills in the defaults of every bot and refuses a set that cannot
// be supervised: a bot Validate refuses, one whose program cannot be found,
// a name or PID file used twice.
func prepare(bots []Agent) ([]Agent, error) {
	out := make([]Agent, 0, len(bots))
	names := make(map[string]bool, len(bots))
	pids := make(map[string]string, len(bots))
	for i := range bots {
		cfg := bots[i].withDefaults()
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := cfg.lookCommand(); err != nil {
			return nil, err
		}
		if names[cfg.Name] {
			return nil, fmt.Errorf("bot %q %w", cfg.Name, ErrDuplicateBot)
		}
		names[cfg.Name] = true
		key := pidKey(cfg.PIDFile)
		if other, ok := pids[key]; ok {
			return nil, fmt.Errorf("%s %w: %q and %q", cfg.PIDFile, ErrDuplicatePIDFile, other, cfg.Name)
		}
		pids[key] = cfg.Name
		out = append(out, cfg)
	}
	return out, nil
}

// pidKey is the PID file's path as the lock sees it, so that two spellings
// of one file count as one.
func pidKey(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// claim takes the agent locks of bots, or none of them: on failure every
// lock taken is released and the error names every bot another agent holds.
func claim(bots []Agent) ([]*pidfile.File, error) {
	locks := make([]*pidfile.File, 0, len(bots))
	var taken, failed []error
	for i := range bots {
		cfg := &bots[i]
		lock, err := pidfile.Acquire(agentLockPath(cfg.PIDFile))
		if le := (*pidfile.LockedError)(nil); errors.As(err, &le) {
			who := "another agent process"
			if le.PID > 0 {
				who = fmt.Sprintf("agent pid %d", le.PID)
			}
			taken = append(taken, fmt.Errorf("%w %q on this host (%s)", ErrAnotherAgent, cfg.Name, who))
			continue
		}
		if err == nil {
			if err = lock.WritePID(os.Getpid()); err != nil {
				lock.Remove()
			}
		}
		if err != nil {
			failed = append(failed, fmt.Errorf("agent lock of bot %q: %w", cfg.Name, err))
			continue
		}
		locks = append(locks, lock)
	}
	if err := errors.Join(append(taken, failed...)...); err != nil {
		for _, l := range locks {
			l.Remove()
		}
		return nil, err
	}
	return locks, nil
}

// keepBootTime turns on gopsutil's boot-time cache once per process: it is
// a setting of gopsutil's own, process-wide, and two fleets setting it at
// once raced. Without it gopsutil reads /proc/stat for the boot time on
// every CPU reading of a bot (each status answer): with 100 bots that was a
// fifth of an idle agent's CPU. The boot time does not change while the
// agent runs, and a kept one makes a bot's create time, its identity proof,
// immune to the wall clock being stepped.
var keepBootTime sync.Once

// Run supervises the bots until ctx is done; it returns nil on a clean stop.
// Nothing starts unless every bot can: a bad bot, or one another agent
// supervises (here or on the bus), is refused before any bot is touched.
func (f *Fleet) Run(ctx context.Context) error {
	keepBootTime.Do(func() { process.EnableBootTimeCache(true) })
	bots, err := prepare(f.Bots)
	if err != nil {
		return err
	}
	locks, err := claim(bots)
	if err != nil {
		return err
	}
	members := make([]*member, len(bots))
	for i := range bots {
		m := &member{cfg: bots[i], lock: locks[i], done: make(chan struct{})}
		m.s = newSupervisor(&m.cfg)
		m.s.noNotify = &f.noNotify
		members[i] = m
	}
	ok := false
	defer func() {
		if !ok {
			for _, m := range members {
				m.release()
			}
		}
	}()

	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	opts := []nats.Option{
		nats.ConnectHandler(func(*nats.Conn) { f.notifyConn() }),
		nats.ReconnectHandler(func(*nats.Conn) { f.notifyConn() }),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { f.notifyConn() }),
	}
	if f.NATSCA != "" {
		opts = append(opts, nats.RootCAs(f.NATSCA))
	}
	lopts, err := f.Login.Options()
	if err != nil {
		return err
	}
	name := f.ConnName
	if name == "" {
		name = "lifeline-agent"
	}
	nc, err := bus.Connect(orURL(f.NATSURL), name, true, append(opts, lopts...)...)
	if err != nil {
		return err
	}
	defer nc.Close()
	hb, lazy, err := heartbeatConn(nc, orURL(f.NATSURL), name, append(opts, lopts...))
	if err != nil {
		return err
	}
	defer hb.Close()
	for _, m := range members {
		m.s.nc, m.s.hb, m.s.lazy = nc, hb, lazy
	}
	if err := checkNoOtherAgents(nc, bots); err != nil {
		return err
	}
	// Sized for the bots of the start: a fleet grown by reloads shares it.
	resp, err := newResponder(nc, f.Logger, len(members))
	if err != nil {
		return err
	}
	defer resp.stop()
	for _, m := range members {
		if err := m.register(resp); err != nil {
			return err
		}
	}
	if err := checkNoRivals(ctx, nc, members); err != nil {
		return err
	}
	ok = true

	f.mu.Lock()
	f.nc, f.hb, f.lazy, f.ctx, f.resp = nc, hb, lazy, ctx, resp
	f.members = make(map[string]*member, len(members))
	for _, m := range members {
		f.members[m.cfg.Name] = m
	}
	f.mu.Unlock()
	if f.OnStarted != nil {
		f.OnStarted()
	}
	for _, m := range members {
		m.start(ctx)
	}
	<-ctx.Done()

	// Reload may be between stopping and starting bots: let it finish, so
	// every member it started is waited for below.
	f.reload.Lock()
	defer f.reload.Unlock()
	f.mu.Lock()
	left := make([]*member, 0, len(f.members))
	for _, m := range f.members {
		left = append(left, m)
	}
	f.mu.Unlock()
	for _, m := range left {
		<-m.done
	}
	for _, m := range left {
		m.release()
	}
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		f.Logger.Debug("drain bus connection", "err", err)
	}
	return nil
}

// heartbeatConn opens the connection the bots' heartbeats come over: a
// second one, read lazily (see lazyconn_unix.go), or nc itself where there
// is no lazy reading.
func heartbeatConn(nc *nats.Conn, url, name string, opts []nats.Option) (*nats.Conn, *lazyDialer, error) {
	lazy := newLazyDialer()
	if lazy == nil {
		return nc, nil, nil
	}
	hb, err := bus.Connect(url, name+"-heartbeats", true, append(opts, nats.SetCustomDialer(lazy))...)
	if err != nil {
		return nil, nil, fmt.Errorf("heartbeat connection: %w", err)
	}
	return hb, lazy, nil
}

func orURL(u string) string {
	if u == "" {
		return bus.DefaultURL
	}
	return u
}

// notifyConn tells every bot's loop that the connection changed.
func (f *Fleet) notifyConn() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.members {
		m.s.notifyConn()
	}
}

// register subscribes to the bot's heartbeats and adds its service.
func (m *member) register(r *responder) error {
	sub, err := m.s.hb.ChanSubscribe(bus.HeartbeatSubject(m.cfg.Name), m.s.beats)
	if err != nil {
		return fmt.Errorf("subscribe to heartbeats: %w", err)
	}
	m.sub = sub
	svc, err := m.s.serve(r)
	if err != nil {
		return err
	}
	m.svc = svc
	return nil
}

// start runs the bot's loop until ctx is done or the member is retired.
func (m *member) start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	go func() {
		defer close(m.done)
		m.s.run(ctx)
	}()
}

// retire ends the bot's loop; stopBot stops its process first, as `lifeline
// stop` would. It returns once the loop has ended and the member's lock and
// bus registrations are gone.
func (m *member) retire(stopBot bool) {
	if stopBot {
		m.s.stopBot.Store(true)
	}
	m.cancel()
	<-m.done
	m.release()
}

// release undoes register and claim.
func (m *member) release() {
	if m.svc != nil {
		_ = m.svc.Stop()
		m.svc = nil
	}
	if m.sub != nil {
		_ = m.sub.Unsubscribe()
		m.sub = nil
	}
	if m.lock != nil {
		m.lock.Remove()
		m.lock = nil
	}
}

// Reload makes the supervised bots those of bots, with the least
// disruption: a bot whose settings are unchanged is left alone (same
// process, same loop); a removed bot is stopped as `lifeline stop` would;
// a changed bot is stopped and started again with its new settings; an
// added bot is started (or adopted). A set that cannot be supervised is
// refused and nothing changes.
func (f *Fleet) Reload(bots []Agent) error {
	f.reload.Lock()
	defer f.reload.Unlock()
	cfgs, err := prepare(bots)
	if err != nil {
		return err
	}
	f.mu.Lock()
	nc, hb, lazy, ctx, resp, old := f.nc, f.hb, f.lazy, f.ctx, f.resp, maps(f.members)
	f.mu.Unlock()
	if nc == nil || ctx.Err() != nil {
		return ErrNotRunning
	}
	var added, changed []Agent
	var retired []*member // removed and changed
	keep := make(map[string]bool, len(cfgs))
	for _, c := range cfgs {
		keep[c.Name] = true
		m, ok := old[c.Name]
		switch {
		case !ok:
			added = append(added, c)
		case !sameSettings(&m.cfg, &c):
			changed = append(changed, c)
			retired = append(retired, m)
		}
	}
	for name, m := range old {
		if !keep[name] {
			retired = append(retired, m)
		}
	}
	// An added bot may take the PID file of a retired one (a bot renamed):
	// its lock is taken once that one is gone, like a changed bot's. One
	// that a kept bot holds is refused now.
	var fresh []Agent
	for _, c := range added {
		moved := false
		for _, m := range old {
			if pidKey(m.cfg.PIDFile) != pidKey(c.PIDFile) {
				continue
			}
			if !slices.Contains(retired, m) {
				return fmt.Errorf("%s %w: %q and %q", c.PIDFile, ErrDuplicatePIDFile, m.cfg.Name, c.Name)
			}
			moved = true
		}
		if moved {
			changed = append(changed, c)
		} else {
			fresh = append(fresh, c)
		}
	}
	added = fresh
	locks, err := claim(added)
	if err != nil {
		return err
	}
	if err := checkNoOtherAgents(nc, added); err != nil {
		for _, l := range locks {
			l.Remove()
		}
		return err
	}

	var wg sync.WaitGroup
	for _, m := range retired {
		wg.Go(func() {
			f.Logger.Info("reload: stopping bot", "bot", m.cfg.Name, "removed", !keep[m.cfg.Name])
			m.retire(true)
		})
	}
	wg.Wait()
	f.mu.Lock()
	for _, m := range retired {
		delete(f.members, m.cfg.Name)
	}
	f.mu.Unlock()

	var errs []error
	starting := make([]*member, 0, len(added)+len(changed))
	for i, c := range added {
		starting = append(starting, &member{cfg: c, lock: locks[i], done: make(chan struct{})})
	}
	if len(changed) > 0 {
		relocks, err := claimEach(changed)
		errs = append(errs, err)
		for i, c := range changed {
			if relocks[i] != nil {
				starting = append(starting, &member{cfg: c, lock: relocks[i], done: make(chan struct{})})
			}
		}
	}
	for _, m := range starting {
		if ctx.Err() != nil {
			m.release() // the agent is leaving: start nothing new
			continue
		}
		m.s = newSupervisor(&m.cfg)
		m.s.noNotify = &f.noNotify
		m.s.nc, m.s.hb, m.s.lazy = nc, hb, lazy
		if err := m.register(resp); err != nil {
			m.release()
			errs = append(errs, fmt.Errorf("bot %q: %w", m.cfg.Name, err))
			continue
		}
		f.mu.Lock()
		f.members[m.cfg.Name] = m
		f.mu.Unlock()
		f.Logger.Info("reload: starting bot", "bot", m.cfg.Name)
		m.start(ctx)
	}
	return errors.Join(errs...)
}

// claimEach claims each bot's agent lock on its own: a bot whose lock cannot
// be had gets nil and is named in the error, the others are kept.
func claimEach(bots []Agent) ([]*pidfile.File, error) {
	locks := make([]*pidfile.File, len(bots))
	var errs []error
	for i := range bots {
		l, err := claim(bots[i : i+1])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		locks[i] = l[0]
	}
	return locks, errors.Join(errs...)
}

func maps(m map[string]*member) map[string]*member {
	out := make(map[string]*member, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sameSettings reports whether a and b supervise their bot alike, so that a
// reload may leave it alone. The hooks and the logger do not count.
func sameSettings(a, b *Agent) bool {
	x, y := *a, *b
	x.Logger, y.Logger = nil, nil
	x.OnStarted, y.OnStarted = nil, nil
	x.OnBotRunning, y.OnBotRunning = nil, nil
	return reflect.DeepEqual(x, y)
}

// Names returns the names of the bots supervised now, sorted.
func (f *Fleet) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.members))
	for n := range f.members {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkNoOtherAgents asks the bus, for every bot at once, whether an agent
// already answers for it, and names every one that has. An unreachable bus
// is not an error: the bots must be kept alive regardless.
func checkNoOtherAgents(nc *nats.Conn, bots []Agent) error {
	if !nc.IsConnected() || len(bots) == 0 {
		return nil
	}
	errs := make([]error, len(bots))
	var wg sync.WaitGroup
	for i := range bots {
		wg.Go(func() { errs[i] = checkNoOtherAgent(nc, bots[i].Name) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// checkNoRivals catches an agent for one of members' bots that started at
// the same moment as this one: both asked the bus (checkNoOtherAgent) before
// either answered there. Once both are registered each sees the other, and
// the one registered later (by its service's start time, then its service
// ID) gives way, so exactly one of them goes on to supervise the bot. One
// round of questions covers every member.
func checkNoRivals(ctx context.Context, nc *nats.Conn, members []*member) error {
	if !nc.IsConnected() || len(members) == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(rivalSettle):
	}
	subject, err := micro.ControlSubject(micro.StatsVerb, bus.AgentService, "")
	if err != nil {
		return nil
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil
	}
	mine := make(map[string]micro.Stats, len(members))
	ours := make(map[string]bool, len(members))
	for _, m := range members {
		st := m.svc.Stats()
		mine[m.cfg.Name] = st
		ours[st.ID] = true
	}
	ctx, cancel := context.WithTimeout(ctx, rivalWindow)
	defer cancel()
	var errs []error
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return errors.Join(errs...)
		}
		var st micro.Stats
		if json.Unmarshal(msg.Data, &st) != nil || ours[st.ID] {
			continue
		}
		name := st.Metadata["name"]
		me, ok := mine[name]
		if !ok {
			continue
		}
		if st.Started.Before(me.Started) || st.Started.Equal(me.Started) && st.ID < me.ID {
			errs = append(errs, fmt.Errorf("%w %q: agent pid %s on %s started just before this one",
				ErrAnotherAgent, name, st.Metadata["pid"], st.Metadata["host"]))
		}
	}
}
