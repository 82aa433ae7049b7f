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
	nc    *nats.Conn
	state *state
	log   *slog.Logger
	ctx   context.Context // cancelled when the dashboard stops
	wg    *sync.WaitGroup // Run's; every goroutine started here joins it
	rec   eventRecorder   // copies events into the history; nil without history

	mu       sync.Mutex
	stopped  bool
	inflight map[string]bool // a status request for the bot is under way
	again    map[string]bool // and another was wanted meanwhile
}

// eventRecorder keeps the events the watcher receives (a *history.History).
type eventRecorder interface {
	// Record queues the event data of bot name, as published, without
	// blocking.
	Record(name string, data []byte)
}

func newWatcher(nc *nats.Conn, st *state, log *slog.Logger, rec eventRecorder, ctx context.Context, wg *sync.WaitGroup) *watcher {
	st.setLog(log)
	return &watcher{nc: nc, state: st, log: log, rec: rec, ctx: ctx, wg: wg, inflight: make(map[string]bool), again: make(map[string]bool)}
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
	w.refresh(e.Name) // the event changed the bot's state: ask at once
}

// refresh asks the bot's agent for its status in the background. Requests
// for one bot are coalesced: at most one runs, and one more follows it if
// anything asked meanwhile.
func (w *watcher) refresh(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if w.inflight[name] {
		w.again[name] = true
		return
	}
	w.inflight[name] = true
	w.wg.Go(func() {
		for {
			w.ask(name)
			w.mu.Lock()
			if w.again[name] && !w.stopped {
				delete(w.again, name)
				w.mu.Unlock()
				continue
			}
			delete(w.again, name)
			delete(w.inflight, name)
			w.mu.Unlock()
			return
		}
	})
}

// ask asks the bot's agent for status now and records the outcome. It
// returns whether the agent answered.
func (w *watcher) ask(name string) bool {
	ctx, cancel := context.WithTimeout(w.ctx, statusTimeout)
	defer cancel()
	st, err := bus.AskStatus(ctx, w.nc, name)
	if w.ctx.Err() != nil {
		return false // shutting down: the silence means nothing
	}
	if err != nil {
		if !errors.Is(err, bus.ErrNoAgent) {
			w.log.Debug("status request failed", "bot", name, "err", err)
		}
		w.state.agentAnswer(name, nil)
		return false
	}
	if w.state.agentAnswer(name, &st) {
		w.log.Info("found agent", "bot", name)
	}
	return true
}

// poll discovers agents and asks every supervised bot's agent for status,
// at start and every pollInterval, until the dashboard stops.
func (w *watcher) poll() {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		w.discover()
		for _, name := range w.state.supervised() {
			w.refresh(name)
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
func (w *watcher) discover() {
	subject, err := micro.ControlSubject(micro.InfoVerb, bus.AgentService, "")
	if err != nil {
		return
	}
	inbox := w.nc.NewInbox()
	sub, err := w.nc.SubscribeSync(inbox)
	if err != nil {
		return
	}
	defer sub.Unsubscribe()
	if err := w.nc.PublishRequest(subject, inbox, nil); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(w.ctx, discoverWindow)
	defer cancel()
	asked := make(map[string]bool)
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return
		}
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
			return
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
