package dashboard

import (
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// Bounds of the bot table. Anyone who may publish a heartbeat can make up
// bot names, so names are not kept for good: a bot not heard from for
// botExpiry leaves the table (the default bot stays), and a flood of made-up
// names is gone as soon. botTableCap bounds memory within that time; it is
// far above any real fleet, and reaching it is logged.
const (
	// botExpiry is how long a bot is kept without a heartbeat, an event or
	// an answer from its agent. An agent is asked every pollInterval, so a
	// bot whose agent answers is never forgotten.
	botExpiry   = 2 * time.Minute
	botTableCap = 100_000
)

// state is what the dashboard knows about every bot, plus the live-stream
// subscribers that hear about changes. One mutex guards it all, so a stream's
// snapshot and the updates after it never miss or repeat a change.
type state struct {
	mu         sync.Mutex
	defaultBot string
	bots       map[string]*botState
	expiry     time.Duration // botExpiry; shorter in tests
	maxBots    int           // botTableCap; smaller in tests
	full       bool          // the table reached maxBots, and it was logged
	log        *slog.Logger
	events     []bus.Event // oldest first, at most maxEvents
	bad        int64       // undecodable heartbeats and events
	subs       map[*subscriber]struct{}
	closing    bool
	streams    sync.WaitGroup // one per live stream writer
	now        func() time.Time
}

type botState struct {
	seen    time.Time      // last heartbeat, event or agent answer, on our clock
	hb      *bus.Heartbeat // last heartbeat
	hbAt    time.Time      // when it arrived, on our clock
	agent   *bus.Status    // last answer of the agent, kept for restarts and last exit
	agentAt time.Time      // when it arrived
	agentOK bool           // whether the agent answered the last question
	sent    []byte         // fingerprint of the status last sent to streams
}

// sseMsg is one server-sent event.
type sseMsg struct {
	event string
	data  []byte
}

// subscriber is one live stream. Its channel is buffered and sends never
// block: a subscriber that falls behind is dropped, and its browser
// reconnects and gets a fresh snapshot.
type subscriber struct {
	ch   chan sseMsg
	done chan struct{}
	once sync.Once
}

const subscriberBuffer = 64

func (s *subscriber) close() { s.once.Do(func() { close(s.done) }) }

func newState(defaultBot string) *state {
	st := &state{
		defaultBot: defaultBot,
		bots:       make(map[string]*botState),
		subs:       make(map[*subscriber]struct{}),
		now:        time.Now,
		expiry:     botExpiry,
		maxBots:    botTableCap,
		log:        slog.Default(),
	}
	st.bots[defaultBot] = &botState{seen: st.now()}
	return st
}

// setLog sets where the state reports a full bot table.
func (s *state) setLog(log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = log
}

// setExpiry changes how long a silent bot is kept; for tests.
func (s *state) setExpiry(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expiry = d
}

// ensureLocked returns the bot's record, creating it unless the table is
// full even after forgetting silent bots (then nil, logged the first time).
func (s *state) ensureLocked(name string) *botState {
	if b, ok := s.bots[name]; ok {
		return b
	}
	if len(s.bots) >= s.maxBots {
		s.expireLocked()
	}
	if len(s.bots) >= s.maxBots {
		if !s.full {
			s.full = true
			s.log.Error("bot table full: new bots are not shown until silent ones are forgotten",
				"bots", len(s.bots), "forgotten_after", s.expiry, "refused", name)
		}
		return nil
	}
	if s.full {
		s.full = false
		s.log.Info("bot table has room again", "bots", len(s.bots))
	}
	b := &botState{seen: s.now()}
	s.bots[name] = b
	return b
}

// expireLocked forgets every bot, except the default one, not heard from
// within s.expiry.
func (s *state) expireLocked() {
	cutoff := s.now().Add(-s.expiry)
	for name, b := range s.bots {
		if name != s.defaultBot && b.seen.Before(cutoff) {
			delete(s.bots, name)
		}
	}
}

func (s *state) known(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.bots[name]
	return ok
}

func (s *state) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.bots))
	for n := range s.bots {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// supervised returns the default bot and every bot whose agent has answered
// at least once: those the poll keeps asking. A bot known from heartbeats
// alone was asked when it appeared, and an agent that starts for it later is
// found by discovery; asking every made-up name again each poll would let a
// flood of them multiply into requests.
func (s *state) supervised() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := []string{s.defaultBot}
	for n, b := range s.bots {
		if b.agent != nil && n != s.defaultBot {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// hasAgent reports whether the bot's agent has ever answered.
func (s *state) hasAgent(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bots[name]
	return ok && b.agent != nil
}

// badMessage counts a heartbeat or event that did not decode.
func (s *state) badMessage() {
	s.mu.Lock()
	s.bad++
	s.mu.Unlock()
}

func (s *state) badMessages() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

// heartbeat records hb and reports whether its bot was new.
func (s *state) heartbeat(hb bus.Heartbeat) (isNew bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, had := s.bots[hb.Name]
	b := s.ensureLocked(hb.Name)
	if b == nil {
		return false
	}
	b.hb, b.hbAt, b.seen = &hb, s.now(), s.now()
	s.publishLocked(hb.Name, b)
	return !had
}

// event records a lifecycle event and sends it to every stream.
func (s *state) event(e bus.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.ensureLocked(e.Name)
	if b == nil {
		return
	}
	b.seen = s.now()
	// The history may have brought it first: other dashboards store it as
	// they receive it, and the two arrive on different subscriptions.
	k := keyOf(e)
	if !slices.ContainsFunc(s.events, func(o bus.Event) bool { return keyOf(o) == k }) {
		s.events = trimFair(append(s.events, e), maxEvents)
	}
	s.broadcastLocked(sseMsg{event: "event", data: bus.Encode(e)})
}

// eventKey tells events apart, however they reached the dashboard: live or
// from the history.
type eventKey struct {
	at        int64
	name, typ string
	pid       int
}

func keyOf(e bus.Event) eventKey {
	return eventKey{e.Time.UnixNano(), e.Name, string(e.Type), e.PID}
}

// history merges events read from the bus's history with those already
// seen live, in time order and without repeats.
func (s *state) history(evs []bus.Event) {
	if len(evs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[eventKey]bool, len(s.events)+len(evs))
	var all []bus.Event
	for _, e := range append(slices.Clone(s.events), evs...) {
		k := keyOf(e)
		if seen[k] || s.ensureLocked(e.Name) == nil {
			continue
		}
		seen[k] = true
		all = append(all, e)
	}
	slices.SortStableFunc(all, func(a, b bus.Event) int { return a.Time.Compare(b.Time) })
	s.events = trimFair(all, maxEvents)
}

// trimFair cuts evs (oldest first) to at most limit events by dropping, one
// at a time, the oldest event of the bot with the most, so that a bot
// flooding events pushes out its own, not the few of another bot.
func trimFair(evs []bus.Event, limit int) []bus.Event {
	if len(evs) <= limit {
		return evs
	}
	count := make(map[string]int)
	for _, e := range evs {
		count[e.Name]++
	}
	drop := make(map[int]bool, len(evs)-limit)
	for n := len(evs); n > limit; n-- {
		top := ""
		for name, c := range count {
			if c > count[top] || c == count[top] && name < top {
				top = name
			}
		}
		for i, e := range evs {
			if e.Name == top && !drop[i] {
				drop[i] = true
				break
			}
		}
		count[top]--
	}
	out := evs[:0]
	for i, e := range evs {
		if !drop[i] {
			out = append(out, e)
		}
	}
	return out
}

// recentEvents returns the kept events, newest first.
func (s *state) recentEvents() []bus.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.events)
	slices.Reverse(out)
	if out == nil {
		out = []bus.Event{}
	}
	return out
}

// agentAnswer records the outcome of asking a bot's agent for status: st is
// its answer, or nil when it did not answer. It reports whether the answer
// made the bot known: only the bot's own agent may answer on its status
// subject, so an answer is what lists a bot found by discovery.
func (s *state) agentAnswer(name string, st *bus.Status) (isNew bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, known := s.bots[name]
	if !known && st == nil {
		return false // silence about a bot nobody mentioned makes it no bot
	}
	b := s.ensureLocked(name)
	if b == nil {
		return false
	}
	if st != nil {
		b.agent, b.agentAt, b.agentOK, b.seen = st, s.now(), true, s.now()
	} else {
		b.agentOK = false
	}
	s.publishLocked(name, b)
	return !known
}

// tick forgets silent bots and re-evaluates the others, so a heartbeat going
// stale is noticed even when nothing arrives.
func (s *state) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	for name, b := range s.bots {
		s.publishLocked(name, b)
	}
}

// status returns the bot's status as the dashboard sees it now.
func (s *state) status(name string) (bus.Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bots[name]
	if !ok {
		return bus.Status{}, false
	}
	return effective(name, b, s.now()), true
}

// all returns every bot's status, sorted by name.
func (s *state) all() []bus.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]bus.Status, 0, len(s.bots))
	for name, b := range s.bots {
		out = append(out, effective(name, b, now))
	}
	slices.SortFunc(out, func(a, b bus.Status) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// effective merges what the agent said with the heartbeats seen since. With
// no answering agent, the status is built from the last heartbeat alone.
func effective(name string, b *botState, now time.Time) bus.Status {
	if b.agentOK && b.agent != nil {
		st := *b.agent
		st.Name = name
		st.Agent.Connected = true
		if b.hb != nil && b.hb.PID == st.PID && b.hbAt.After(b.agentAt) {
			t := b.hb.Time
			age := now.Sub(b.hbAt).Milliseconds()
			st.LastHeartbeatAt, st.HeartbeatAgeMS = &t, &age
			if b.hb.Stats != nil {
				st.Stats = b.hb.Stats
			}
		} else if st.HeartbeatAgeMS != nil {
			age := *st.HeartbeatAgeMS + now.Sub(b.agentAt).Milliseconds()
			st.HeartbeatAgeMS = &age
		}
		return st
	}
	st := bus.Status{Name: name, State: bus.StateUnknown}
	if b.agent != nil {
		// Remembered from when the agent last answered.
		st.Restarts, st.LastExit = b.agent.Restarts, b.agent.LastExit
		st.Agent = bus.AgentInfo{PID: b.agent.Agent.PID, Host: b.agent.Agent.Host}
	}
	st.Agent.Connected = false
	if hb := b.hb; hb != nil {
		st.PID, st.Host, st.Version, st.Stats = hb.PID, hb.Host, hb.Version, hb.Stats
		if !hb.StartedAt.IsZero() {
			t := hb.StartedAt
			st.StartedAt = &t
		}
		t := hb.Time
		age := now.Sub(b.hbAt).Milliseconds()
		st.LastHeartbeatAt, st.HeartbeatAgeMS = &t, &age
		if now.Sub(b.hbAt) < heartbeatFresh {
			st.State = bus.StateRunning
		}
	}
	return st
}

// fingerprint is the status without its ever-growing heartbeat age, so only
// real changes reach the streams.
func fingerprint(st bus.Status) []byte {
	st.HeartbeatAgeMS = nil
	b, _ := json.Marshal(st)
	return b
}

func (s *state) publishLocked(name string, b *botState) {
	st := effective(name, b, s.now())
	fp := fingerprint(st)
	if string(fp) == string(b.sent) {
		return
	}
	b.sent = fp
	s.broadcastLocked(sseMsg{event: "status", data: bus.Encode(st)})
}

func (s *state) broadcastLocked(m sseMsg) {
	for sub := range s.subs {
		select {
		case sub.ch <- m:
		default:
			delete(s.subs, sub)
			sub.close()
		}
	}
}

// subscribe registers a live stream and returns the snapshot it must send
// first. It returns nil once the dashboard is shutting down. The caller must
// call s.streams.Done when its writer ends.
func (s *state) subscribe() (*subscriber, []sseMsg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, nil
	}
	s.streams.Add(1)
	sub := &subscriber{ch: make(chan sseMsg, subscriberBuffer), done: make(chan struct{})}
	s.subs[sub] = struct{}{}
	now := s.now()
	names := make([]string, 0, len(s.bots))
	for n := range s.bots {
		names = append(names, n)
	}
	slices.Sort(names)
	snap := make([]sseMsg, 0, len(names))
	for _, n := range names {
		snap = append(snap, sseMsg{event: "status", data: bus.Encode(effective(n, s.bots[n], now))})
	}
	return sub, snap
}

func (s *state) unsubscribe(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, sub)
	sub.close()
}

// closeStreams ends every live stream and refuses new ones.
func (s *state) closeStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for sub := range s.subs {
		sub.close()
	}
	clear(s.subs)
}

// waitStreams waits until every stream writer has returned.
func (s *state) waitStreams() { s.streams.Wait() }
