package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// The live streams' side of the state: what changed goes out in shared
// events (flush), to every subscriber (broadcastLocked), after a snapshot.

// Live streams get what changed, not every message: a heartbeat or an
// agent's answer only marks its bot dirty, and a flush (see flushDelay:
// at most flushInterval after the first mark) turns the dirty bots whose status
// really changed into one "statuses" event (a JSON array), marshalled once
// and shared by every stream. A burst of heartbeats from one bot is one
// entry, and 10,000 bots at 1 Hz cost each stream about 20 events a second
// rather than 10,000.
//
// A status that differs only in when the last heartbeat came (the page
// shows its age, which it counts on by itself from the last status) is
// "time-only": sending each would cost every stream every heartbeat of
// every bot. Those go out oldest first, within a budget a second that
// shrinks as streams grow (ageDeliveries in all, between ageMin and ageMax
// per stream): with a page or two open, 2,000 bots show every heartbeat and
// 10,000 each age put right every 5 s; with 1,000 streams, every 100 s. Any
// real change (state, PID, stats, agent) goes at once.
const (
	// flushInterval is the least time between two flushes that send
	// statuses: with 1,000 streams each flush is 1,000 writes, so it bounds
	// that work to 20 rounds a second whatever the fleet does. A change is
	// sent flushCoalesce after it came (the changes of that instant share
	// its event), or flushInterval after the last flush that sent, whichever
	// is later: at most half the 100 ms a change may take to reach a stream,
	// and little of it when changes are sparse. A lifecycle event goes at
	// once, and takes the waiting statuses with it.
	flushInterval = 50 * time.Millisecond
	flushCoalesce = 5 * time.Millisecond
	// The budget of time-only statuses a second, and ageEvery how often
	// they go out when nothing else does.
	ageDeliveries = 20_000
	ageMin        = 100
	ageMax        = 2_000
	ageEvery      = time.Second
	// snapshotChunk is how many statuses one event of a snapshot holds.
	snapshotChunk = 256
	// cacheFresh is how old a bot's marshalled status may be and still be
	// sent in a snapshot: reconnecting streams share the work, and the page
	// counts the heartbeat age on from when the status came, so the age it
	// shows is at most this much short.
	cacheFresh = 500 * time.Millisecond
)

// fingerprint is the status without when the last heartbeat came (and its
// age): what makes a change more than time-only.
func fingerprint(st bus.Status) []byte {
	st.HeartbeatAgeMS, st.LastHeartbeatAt = nil, nil
	b, _ := json.Marshal(st)
	return b
}

// publishLocked marks the bot's status as possibly changed for the next
// flush.
func (s *state) publishLocked(name string, b *botState) {
	b.js = nil // its marshalled status is out of date
	if b.dirty {
		return
	}
	b.dirty = true
	s.dirty = append(s.dirty, name)
	s.wakeLocked()
}

// wakeLocked tells the flusher there is something to flush.
func (s *state) wakeLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// encodeLocked returns the bot's status as JSON, marshalling it only when it
// changed or the cached one is older than maxAge.
func (s *state) encodeLocked(name string, b *botState, now time.Time, maxAge time.Duration) []byte {
	if b.js == nil || now.Sub(b.jsAt) > maxAge {
		b.js, b.jsAt = bus.Encode(effective(name, b, now)), now
	}
	return b.js
}

// runFlusher flushes dirty bots to the streams, flushDelay after the
// first change, and waiting time-only changes every ageEvery, until ctx
// ends.
func (s *state) runFlusher(ctx context.Context) {
	t := time.NewTimer(0)
	<-t.C
	ages := time.NewTicker(ageEvery)
	defer ages.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-ages.C:
			if s.agesWaiting() {
				s.flush()
			}
			continue
		}
		t.Reset(s.flushDelay())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.flush()
	}
}

// flushDelay is how long the flusher waits, once woken, before flushing:
// flushCoalesce, or until flushInterval after the last flush that sent.
func (s *state) flushDelay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(flushCoalesce, s.lastSent.Add(flushInterval).Sub(s.now()))
}

// flush sends every dirty bot whose status changed, and time-only changes
// within the budget, as one event to every stream.
func (s *state) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.flushLocked(); ok {
		s.broadcastLocked(m)
	}
}

// flushLocked returns the "statuses" event flush sends, if there is one.
func (s *state) flushLocked() (*sseMsg, bool) {
	now := s.now()
	var batch [][]byte
	for _, name := range s.dirty {
		b, ok := s.bots[name]
		if !ok || !b.dirty {
			continue // forgotten meanwhile
		}
		b.dirty = false
		st := effective(name, b, now)
		fp := fingerprint(st)
		switch {
		case string(fp) != string(b.sent):
			b.sent, b.sentHB = fp, b.hbAt
			batch = append(batch, s.encodeLocked(name, b, now, 0))
		case !b.hbAt.Equal(b.sentHB) && !b.ageQueued:
			b.ageQueued = true
			s.ageQueue = append(s.ageQueue, name)
		}
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	// Time-only changes, oldest first, as many as the budget allows since
	// they were last sent: with an event going out anyway, or on their own
	// once per ageEvery, so that they alone wake each stream only that often.
	if len(batch) == 0 && now.Sub(s.lastAge) < ageEvery {
		return nil, false
	}
	elapsed := now.Sub(s.lastAge)
	if s.lastAge.IsZero() || elapsed > ageEvery {
		elapsed = ageEvery
	}
	s.lastAge = now
	budget := float64(min(max(ageDeliveries/max(len(s.subs), 1), s.ageMin), s.ageMax))
	s.ageCredit = min(s.ageCredit+budget*elapsed.Seconds(), budget*ageEvery.Seconds())
	n := 0
	for ; n < len(s.ageQueue) && s.ageCredit >= 1; n++ {
		name := s.ageQueue[n]
		b, ok := s.bots[name]
		if !ok || !b.ageQueued {
			continue
		}
		b.ageQueued = false
		if b.hbAt.Equal(b.sentHB) {
			continue // sent meanwhile with a real change
		}
		s.ageCredit--
		b.sentHB = b.hbAt
		batch = append(batch, s.encodeLocked(name, b, now, 0))
	}
	s.ageQueue = slices.Delete(s.ageQueue, 0, n)
	if len(batch) == 0 {
		return nil, false
	}
	s.lastSent = now
	return &sseMsg{event: "statuses", data: joinJSON(batch)}, true
}

// agesWaiting reports whether time-only changes wait to be sent.
func (s *state) agesWaiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ageQueue) > 0
}

// joinJSON makes one JSON array of the encoded values.
func joinJSON(items [][]byte) []byte {
	n := 2
	for _, it := range items {
		n += len(it) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, '[')
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	return append(out, ']')
}

// broadcastLocked hands the messages to every stream without waiting: a
// stream whose buffer is full is dropped, and its browser reconnects for a
// snapshot. A stream's messages are handed over together, so that its
// writer, woken by the first, writes them all at once.
func (s *state) broadcastLocked(msgs ...*sseMsg) {
	for i := range msgs {
		msgs[i] = msgs[i].framed()
	}
	for sub := range s.subs {
		for _, m := range msgs {
			select {
			case sub.ch <- m:
				continue
			default:
				delete(s.subs, sub)
				sub.drop()
			}
			break
		}
	}
}

// subscribe registers a live stream and returns the snapshot it must send
// first: every bot's status, marshalled (shared with the other streams, not
// copied), for writeSnapshot. It returns nil once the dashboard is shutting
// down. The caller must call s.streams.Done when its writer ends.
func (s *state) subscribe() (*subscriber, [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, nil
	}
	s.streams.Add(1)
	sub := &subscriber{ch: make(chan *sseMsg, subscriberBuffer), done: make(chan struct{})}
	s.subs[sub] = struct{}{}
	// The snapshot is sent after the statuses already flushed, and before
	// those of the next flush, which holds every change since. The page
	// orders the bots itself.
	now := s.now()
	snap := make([][]byte, 0, len(s.bots))
	for n, b := range s.bots {
		snap = append(snap, s.encodeLocked(n, b, now, cacheFresh))
	}
	return sub, snap
}

// writeSnapshot writes the statuses as "statuses" events of at most
// snapshotChunk each, so that a big fleet's snapshot is not one line of
// megabytes.
func writeSnapshot(w *bufio.Writer, snap [][]byte) {
	for chunk := range slices.Chunk(snap, snapshotChunk) {
		w.WriteString("event: statuses\ndata: [")
		for i, js := range chunk {
			if i > 0 {
				w.WriteByte(',')
			}
			w.Write(js)
		}
		w.WriteString("]\n\n")
	}
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
