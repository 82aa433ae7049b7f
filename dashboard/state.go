package dashboard

import (
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
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
	// an answer from its agent. An agent is asked at least every half of it
	// (see due), so a bot whose agent answers is never forgotten.
	botExpiry   = 2 * time.Minute
	botTableCap = 100_000
)

// state is what the dashboard knows about every bot, plus the live-stream
// subscribers that hear about changes. One mutex guards it all, so a stream's
// snapshot and the updates after it never miss a change (a status may come
// twice, the same both times).
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
	dirty      []string // bots marked dirty since the last flush
	ageQueue   []string // bots with a time-only change not yet sent, oldest first
	ageMin     int      // ageMin, ageMax: other values in tests
	ageMax     int
	ageCredit  float64       // time-only statuses the next flush may send
	lastAge    time.Time     // when time-only changes were last sent
	lastSent   time.Time     // when the last flush sent statuses, see flushDelay
	wake       chan struct{} // a flush is wanted
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
	fresh   bool           // whether hb was fresh when last looked at

	// What the streams were sent, see flush.
	dirty     bool      // listed in state.dirty
	ageQueued bool      // listed in state.ageQueue
	sent      []byte    // fingerprint of the status last sent to streams
	sentHB    time.Time // hbAt of the status last sent
	js        []byte    // the status marshalled at jsAt; nil once it changed
	jsAt      time.Time

	askedAt time.Time // when the watcher last chose to ask its agent
	misses  int       // questions in a row its agent let time out
	lostAt  time.Time // when its agent last stopped answering

	evCount eventCounts // live events by type, for /metrics (metrics.go)
}

// missesAllowed is how many questions in a row an agent may let time out
// before its bot shows "no agent": on a busy bus one late answer is no news,
// while "no responders" from the bus is, at once.
const missesAllowed = 1

// sseMsg is one server-sent event.
type sseMsg struct {
	event string
	data  []byte
	// frame is the event as written on the wire, built once and shared by
	// every stream (see framed): an HTTP chunk holding "event: ...\ndata:
	// ...\n\n", of which data is a part. hl is the length of the chunk's size
	// line, so frame[hl:len(frame)-2] is the event without chunking.
	frame []byte
	hl    int
}

// framed returns m with its frame built, once for every stream.
func (m *sseMsg) framed() *sseMsg {
	if m.frame != nil {
		return m
	}
	size := len("event: \ndata: \n\n") + len(m.event) + len(m.data)
	var line [20]byte
	hdr := append(strconv.AppendInt(line[:0], int64(size), 16), '\r', '\n')
	f := make([]byte, 0, len(hdr)+size+2)
	f = append(f, hdr...)
	f = append(f, "event: "...)
	f = append(f, m.event...)
	f = append(f, "\ndata: "...)
	start := len(f)
	f = append(f, m.data...)
	end := len(f)
	f = append(f, "\n\n\r\n"...)
	return &sseMsg{event: m.event, data: f[start:end:end], frame: f, hl: len(hdr)}
}

// subscriber is one live stream. Its channel is buffered and sends never
// block: a subscriber that falls behind is dropped, and its browser
// reconnects and gets a fresh snapshot.
type subscriber struct {
	ch   chan *sseMsg // shared by every stream; a pointer keeps the buffer small
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	conn  net.Conn  // what its writer writes to, once attached
	endBy time.Time // when a write under way must end, once ended; zero before
}

// subscriberBuffer is how many events a stream may fall behind before it is
// dropped: flushes come at most every flushInterval, and the events are
// shared, not copied, so a stream may lag about ten seconds (a big snapshot
// on a slow link) for little memory.
const subscriberBuffer = 256

// streamEndGrace is how long a stream's writer may still write once the
// stream is closed: what it is writing, and the end of the HTTP body.
const streamEndGrace = time.Second

// close ends the stream: its writer returns, after ending the response
// within streamEndGrace.
func (s *subscriber) close() { s.end(streamEndGrace) }

// drop ends the stream of a client that reads too slowly: a write under way
// fails at once, so its writer returns however stuck.
func (s *subscriber) drop() { s.end(0) }

func (s *subscriber) end(grace time.Duration) {
	s.once.Do(func() { close(s.done) })
	s.mu.Lock()
	defer s.mu.Unlock()
	by := time.Now().Add(grace)
	if !s.endBy.IsZero() && !by.Before(s.endBy) {
		return
	}
	s.endBy = by
	if s.conn != nil {
		s.conn.SetWriteDeadline(by)
	}
}

// attach gives the subscriber the connection its writer writes to, so that
// end can cut a write short. A deadline already due applies at once.
func (s *subscriber) attach(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = c
	if !s.endBy.IsZero() {
		c.SetWriteDeadline(s.endBy)
	}
}

func newState(defaultBot string) *state {
	st := &state{
		defaultBot: defaultBot,
		bots:       make(map[string]*botState),
		subs:       make(map[*subscriber]struct{}),
		now:        time.Now,
		expiry:     botExpiry,
		maxBots:    botTableCap,
		log:        slog.Default(),
		ageMin:     ageMin,
		ageMax:     ageMax,
		wake:       make(chan struct{}, 1),
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
// within s.expiry, and tells the streams in one "removed" event (a JSON
// array of names), so that a page drops their rows without a reload.
func (s *state) expireLocked() {
	cutoff := s.now().Add(-s.expiry)
	var gone []string
	for name, b := range s.bots {
		if name != s.defaultBot && b.seen.Before(cutoff) {
			delete(s.bots, name)
			gone = append(gone, name)
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		s.broadcastLocked(&sseMsg{event: "removed", data: bus.Encode(gone)})
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

// due returns the bots whose agent the poll should ask again, most
// overdue first and at most limit, and counts them as asked now.
//
// A bot whose agent answers is asked every refresh, and its agent every
// supervised: each round one bot of each agent (the most overdue) is asked,
// so an agent that stops answering is noticed as soon as it was when every
// bot was asked every round, while a multi-bot agent answers one question a
// round, not one per bot (100 bots, 50 questions a second, were most of its
// idle CPU). Should one of an agent's bots go unanswered, all of its bots are
// asked every supervised again, until they answer or count as agentless.
// The default bot, and every bot whose agent stopped answering, are asked
// every supervised; a bot known from heartbeats or events alone, every
// agentless (an agent may have started for it since). A flood of made-up
// names thus costs at most limit requests a round, and dilutes nothing for
// long.
func (s *state) due(supervised, refresh, agentless time.Duration, limit int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// However big the table, each is asked within half the expiry.
	limit = max(limit, len(s.bots)*int(pollInterval/time.Millisecond)/int(max(s.expiry/2/time.Millisecond, 1))+1)
	type cand struct {
		name string
		at   time.Time // when it became due
	}
	// The bots of each answering agent, known by the host and PID it gave.
	type group struct {
		last    time.Time // the latest question to any of its bots
		oldest  string    // its bot asked longest ago
		oldAt   time.Time
		suspect bool // one of its bots went unanswered lately
	}
	groups := map[bus.AgentInfo]*group{}
	for n, b := range s.bots {
		if n == s.defaultBot || b.agent == nil || b.agent.Agent.PID == 0 {
			continue
		}
		key := bus.AgentInfo{PID: b.agent.Agent.PID, Host: b.agent.Agent.Host}
		g := groups[key]
		if g == nil {
			g = &group{}
			groups[key] = g
		}
		if b.misses > 0 || !b.agentOK && now.Sub(b.lostAt) < refresh {
			g.suspect = true
		}
		if !b.agentOK {
			continue
		}
		if b.askedAt.After(g.last) {
			g.last = b.askedAt
		}
		if g.oldest == "" || b.askedAt.Before(g.oldAt) || b.askedAt.Equal(g.oldAt) && n < g.oldest {
			g.oldest, g.oldAt = n, b.askedAt
		}
	}
	var cands []cand
	for n, b := range s.bots {
		every := agentless
		switch {
		case n == s.defaultBot || b.agent != nil && (!b.agentOK || b.misses > 0 || b.agent.Agent.PID == 0):
			every = supervised
		case b.agent != nil:
			every = refresh
			if groups[bus.AgentInfo{PID: b.agent.Agent.PID, Host: b.agent.Agent.Host}].suspect {
				every = supervised
			}
		}
		if at := b.askedAt.Add(every); !now.Before(at) {
			cands = append(cands, cand{n, at})
		}
	}
	for _, g := range groups {
		if g.oldest == "" || g.suspect {
			continue // no bot answers, or each is asked every round already
		}
		at := g.last.Add(supervised)
		if !now.Before(at) && now.Before(g.oldAt.Add(refresh)) { // else it is a candidate already
			cands = append(cands, cand{g.oldest, at})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	names := make([]string, 0, min(limit, len(cands)))
	for _, c := range cands[:min(limit, len(cands))] {
		s.bots[c.name].askedAt = now
		names = append(names, c.name)
	}
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
	prev, wasSource, wasFresh := b.hb, b.hb != nil && b.hbAt.After(b.agentAt), b.fresh
	b.hb, b.hbAt, b.seen, b.fresh = &hb, s.now(), s.now(), true
	if wasSource && wasFresh && !b.dirty && sameBeat(prev, &hb) {
		// Only its time changed: no need to work out the status and compare
		// it (10,000 times a second in a big fleet).
		b.js = nil
		if !b.ageQueued {
			b.ageQueued = true
			s.ageQueue = append(s.ageQueue, hb.Name)
		}
		return false
	}
	s.publishLocked(hb.Name, b)
	return !had
}

// sameBeat reports whether two heartbeats of a bot tell the same but their
// time and sequence number.
func sameBeat(a, b *bus.Heartbeat) bool {
	return a.PID == b.PID && a.Host == b.Host && a.Version == b.Version &&
		a.StartedAt.Equal(b.StartedAt) && maps.Equal(a.Stats, b.Stats)
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
	b.evCount.add(e.Type) // each live event comes once, whatever the history holds
	// The history may have brought it first: other dashboards store it as
	// they receive it, and the two arrive on different subscriptions.
	k := keyOf(e)
	if !slices.ContainsFunc(s.events, func(o bus.Event) bool { return keyOf(o) == k }) {
		s.events = trimFair(append(s.events, e), maxEvents)
	}
	// The statuses waiting for the next flush go with it: streams are
	// woken, and written to, once for both.
	msgs := []*sseMsg{{event: "event", data: bus.Encode(e)}}
	if m, ok := s.flushLocked(); ok {
		msgs = append(msgs, m)
	}
	s.broadcastLocked(msgs...)
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
	b.askedAt = s.now()
	b.misses = 0
	if st != nil {
		b.agent, b.agentAt, b.agentOK, b.seen = st, s.now(), true, s.now()
	} else {
		if b.agentOK {
			b.lostAt = s.now()
		}
		b.agentOK = false
	}
	s.publishLocked(name, b)
	return !known
}

// agentLate records that the bot's agent let a question time out. It counts
// as silence only after missesAllowed such in a row.
func (s *state) agentLate(name string) {
	s.mu.Lock()
	b, ok := s.bots[name]
	if ok && b.agentOK && b.misses < missesAllowed {
		b.misses++
		b.askedAt = s.now()
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.agentAnswer(name, nil)
}

// tick forgets silent bots and marks those whose heartbeat went stale, so
// that it is noticed even when nothing arrives. Only freshness changes a
// status with time alone (its age aside, which the page counts on itself).
func (s *state) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	now := s.now()
	for name, b := range s.bots {
		fresh := b.hb != nil && now.Sub(b.hbAt) < heartbeatFresh
		if fresh != b.fresh {
			b.fresh = fresh
			s.publishLocked(name, b)
		}
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
