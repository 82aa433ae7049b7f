package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// watcher follows the bus: heartbeats and events arrive on NATS callbacks,
// which only record them and hand any question for an agent to a goroutine
// of its own, so a slow or absent agent never stalls message delivery.
//
// It gets what it uses, not the Dashboard: the bus client, the bots' state,
// the logger and the history recorder, from Run.
type watcher struct {
	nc     *nats.Conn
	state  *state
	log    *slog.Logger
	ctx    context.Context // cancelled when the dashboard stops
	wg     *sync.WaitGroup // Run's; every goroutine started here joins it
	rec    eventRecorder   // copies events into the history; nil without history
	alerts *alerter        // turns events into alerts; nil without (alerts.go)

	mu       sync.Mutex
	stopped  bool
	urgent   []string        // bots to ask first: new, or an event came
	routine  []string        // bots the poll chose to ask again
	queued   map[string]bool // in urgent or routine
	inflight map[string]bool // a status request for the bot is under way
	again    map[string]bool // and another was wanted meanwhile
	askers   int             // goroutines asking, at most maxAskers
}

// Asking agents at fleet size: at most maxAskers requests are under way at
// once, however many bots appear together, and the poll asks each bot again
// within pollRate requests a second overall, so 10,000 bots cost 250
// requests a second, not 5,000. Events and new bots are asked about first;
// between questions, heartbeats and events keep a status current.
const (
	maxAskers = 32
	pollRate  = 250
	// agentlessRetry is how often a bot known from heartbeats alone is asked
	// whether an agent supervises it now: made-up names cost no more.
	agentlessRetry = 30 * time.Second
	// discoverRate bounds, on average, the discovery replies a second: each
	// round waits at least pollInterval, and longer after many replies.
	discoverRate = 500
)

// errAgentRefused is an agent's error reply to a status request.
var errAgentRefused = errors.New("the agent answered with an error")

// eventRecorder keeps the events the watcher receives (a *history.History).
type eventRecorder interface {
	// Record queues the event data of bot name, as published, without
	// blocking.
	Record(name string, data []byte)
}

func newWatcher(nc *nats.Conn, st *state, log *slog.Logger, rec eventRecorder, ctx context.Context, wg *sync.WaitGroup) *watcher {
	st.setLog(log)
	return &watcher{nc: nc, state: st, log: log, rec: rec, ctx: ctx, wg: wg,
		queued: make(map[string]bool), inflight: make(map[string]bool), again: make(map[string]bool)}
}

func (w *watcher) subscribe() error {
	if _, err := w.nc.Subscribe(bus.HeartbeatWildcard, w.onHeartbeat); err != nil {
		return fmt.Errorf("subscribe to heartbeats: %w", err)
	}
	if _, err := w.nc.Subscribe(bus.EventsWildcard, w.onEvent); err != nil {
		return fmt.Errorf("subscribe to events: %w", err)
	}
	if err := w.nc.Flush(); err != nil {
		return fmt.Errorf("subscribe to bus: %w", err)
	}
	return nil
}

func (w *watcher) onHeartbeat(msg *nats.Msg) {
	hb, err := bus.DecodeHeartbeat(msg.Data)
	if err == nil && hb.Name != bus.NameFromSubject(msg.Subject) {
		err = fmt.Errorf("heartbeat for %q on subject %s", hb.Name, msg.Subject)
	}
	if err != nil {
		w.state.badMessage()
		w.log.Debug("ignored bad heartbeat", "subject", msg.Subject, "err", err)
		return
	}
	if w.state.heartbeat(hb) {
		w.refresh(hb.Name) // a new bot: find out whether an agent supervises it
	}
}

func (w *watcher) onEvent(msg *nats.Msg) {
	e, err := bus.DecodeEvent(msg.Data)
	if err == nil && e.Name != bus.NameFromSubject(msg.Subject) {
		err = fmt.Errorf("event for %q on subject %s", e.Name, msg.Subject)
	}
	if err != nil {
		w.state.badMessage()
		w.log.Debug("ignored bad event", "subject", msg.Subject, "err", err)
		return
	}
	w.state.event(e)
	if w.rec != nil {
		w.rec.Record(e.Name, msg.Data)
	}
	if w.alerts != nil {
		w.alerts.event(e) // never blocks
	}
	w.refresh(e.Name) // the event changed the bot's state: ask at once
}

// refresh asks the bot's agent for its status in the background, before
// the bots the poll chose. Requests for one bot are coalesced: at most one
// runs, and one more follows it if anything asked meanwhile.
func (w *watcher) refresh(name string) { w.enqueue(name, true) }

func (w *watcher) enqueue(name string, urgent bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if w.inflight[name] {
		w.again[name] = true
		return
	}
	if w.queued[name] {
		return
	}
	w.queued[name] = true
	if urgent {
		w.urgent = append(w.urgent, name)
	} else {
		w.routine = append(w.routine, name)
	}
	if w.askers < maxAskers {
		w.askers++
		w.wg.Go(w.asker)
	}
}

// asker asks the queued bots' agents, one at a time, until none is left.
func (w *watcher) asker() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for !w.stopped {
		var name string
		switch {
		case len(w.urgent) > 0:
			name, w.urgent = w.urgent[0], w.urgent[1:]
		case len(w.routine) > 0:
			name, w.routine = w.routine[0], w.routine[1:]
		default:
			w.askers--
			return
		}
		delete(w.queued, name)
		w.inflight[name] = true
		w.mu.Unlock()
		w.ask(name)
		w.mu.Lock()
		delete(w.inflight, name)
		if w.again[name] {
			delete(w.again, name)
			w.queued[name] = true
			w.urgent = append(w.urgent, name)
		}
	}
	w.askers--
}

// ask asks the bot's agent for status now and records the outcome. It
// returns whether the agent answered.
//
// It uses nats.go's request, whose replies share one subscription, rather
// than bus.AskStatus, which subscribes for each request (with a 64k-message
// channel) to tell a refused request from silence: the dashboard's own login
// may ask every agent, and at fleet size those subscriptions were most of
// its memory and garbage.
func (w *watcher) ask(name string) bool {
	ctx, cancel := context.WithTimeout(w.ctx, statusTimeout)
	defer cancel()
	st, err := w.askStatus(ctx, name)
	if w.ctx.Err() != nil {
		return false // shutting down: the silence means nothing
	}
	switch {
	case err == nil:
		if w.state.agentAnswer(name, &st) {
			w.log.Info("found agent", "bot", name)
		}
		return true
	case errors.Is(err, nats.ErrNoResponders):
		w.state.agentAnswer(name, nil) // the bus says nobody listens
	case ctx.Err() != nil:
		w.state.agentLate(name) // no answer in time
	default:
		w.log.Debug("status request failed", "bot", name, "err", err)
		w.state.agentAnswer(name, nil)
	}
	return false
}

func (w *watcher) askStatus(ctx context.Context, name string) (bus.Status, error) {
	if err := bus.ValidName(name); err != nil {
		return bus.Status{}, err
	}
	msg, err := w.nc.RequestWithContext(ctx, bus.AgentSubject(name, bus.OpStatus), bus.Encode(bus.Request{}))
	if err != nil {
		return bus.Status{}, fmt.Errorf("ask status of %s: %w", name, err)
	}
	st, err := bus.DecodeStatus(msg.Data)
	if err != nil {
		return bus.Status{}, fmt.Errorf("ask status of %s: %w", name, err)
	}
	if st.Name == "" {
		// An error reply from the agent has no name.
		r, _ := bus.DecodeReply(msg.Data)
		return bus.Status{}, fmt.Errorf("ask status of %s: %w: %s", name, errAgentRefused, r.Error)
	}
	return st, nil
}

// poll discovers agents and asks the agents of the bots due for it (see
// state.due) for status, at start and every pollInterval, until the
// dashboard stops.
func (w *watcher) poll() {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var nextDiscovery time.Time
	quiet := pollInterval // the wait after a round without leads; doubles
	for {
		if now := time.Now(); !now.Before(nextDiscovery) {
			replies, leads := w.discover()
			wait := pollInterval
			if leads == 0 {
				wait, quiet = quiet, min(2*quiet, discoverIdle)
			} else {
				quiet = pollInterval
			}
			nextDiscovery = now.Add(max(wait, time.Duration(replies)*time.Second/discoverRate) - pollInterval/4)
		}
		for _, name := range w.state.due(pollInterval, refreshInterval, agentlessRetry, pollRate*int(pollInterval/time.Second)) {
			w.enqueue(name, false)
		}
		w.state.tick()
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// discoverMax bounds the unknown names one discovery round asks about:
// INFO replies can be forged by any login, in any number.
const discoverMax = 1000

// discover collects the bot names of every lifeline-agent micro service
// that answers an INFO request within discoverWindow, and asks the agent of
// each bot not yet known to have one for its status. Anyone may answer an INFO request, so a
// name found there is only a lead: the bot is listed once its agent answers
// on its status subject, where only that bot's agent login may answer.
//
// It returns how many replies came, and how many of them were leads.
func (w *watcher) discover() (replies, leads int) {
	subject, err := micro.ControlSubject(micro.InfoVerb, bus.AgentService, "")
	if err != nil {
		return 0, 0
	}
	inbox := w.nc.NewInbox()
	sub, err := w.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, 0
	}
	defer sub.Unsubscribe()
	if err := w.nc.PublishRequest(subject, inbox, nil); err != nil {
		return 0, 0
	}
	ctx, cancel := context.WithTimeout(w.ctx, discoverWindow)
	defer cancel()
	asked := make(map[string]bool)
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return replies, len(asked)
		}
		replies++
		var info micro.Info
		if err := json.Unmarshal(msg.Data, &info); err != nil {
			continue
		}
		name := info.Metadata["name"]
		if bus.ValidName(name) != nil || asked[name] || w.state.hasAgent(name) {
			continue
		}
		if len(asked) == discoverMax {
			w.log.Debug("more agents discovered than asked about in one round; the rest wait for the next", "asked", discoverMax)
			return replies, len(asked)
		}
		asked[name] = true
		w.log.Debug("discovered agent; asking it", "bot", name, "service_id", info.ID)
		w.refresh(name) // listed once the agent answers
	}
}

// stop refuses further background requests; those under way end with the
// context.
func (w *watcher) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
