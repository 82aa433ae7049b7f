// Package history keeps the lifecycle events of every bot in a JetStream
// stream, so that every dashboard, including one started later, shows the
// same history. A dashboard makes one History on its bus client, hands it
// each event it receives (Record), and runs it (Run): Run makes sure the
// stream exists, stores what was recorded, and passes every event the
// stream holds, or comes to hold, to the Merge function it was given.
//
// It knows nothing of the dashboard's HTTP side or of its in-memory state:
// it takes a NATS connection, a logger, the embedded server (for
// replication) and a Merge function, and nothing else.
package history

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/internal/jsstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Agents publish events with core NATS only (their bus login stays narrow),
// and core NATS does not wait for a stream that has no leader. So the stream
// does not capture the agents' subject: every dashboard records each event it
// receives, publishing the same bytes to bus.HistorySubject with JetStream and
// retrying until the stream acknowledges them. The message ID is a digest of
// those bytes, so the copies of N dashboards are stored once.
const (
	// StreamName names the stream.
	StreamName     = "LIFELINE_EVENTS"
	historyMaxAge  = 7 * 24 * time.Hour
	historyMaxSize = 64 << 20
	// PerBot is how many events the stream keeps per bot (per subject), so
	// that a bot flooding events only pushes out its own oldest ones, never
	// another bot's: at most PerBot times MaxMsgBytes, 5 MB, of the
	// stream's 64 MB.
	PerBot = 1000
	// MaxMsgBytes bounds one stored message: the largest event the
	// decoder accepts, plus room for the message-ID header.
	MaxMsgBytes = bus.MaxMessageBytes + 1<<10
	// historyReplay is how many of the newest kept events a dashboard
	// reads when it starts.
	historyReplay = 1000

	// recordHorizon is how long after receiving an event a dashboard keeps
	// trying to record it: far longer than a leader election, or a cluster
	// forming and making the stream.
	recordHorizon = 10 * time.Minute
	// historyDuplicates is the stream's duplicate window. It outlasts
	// recordHorizon, so a dashboard's last retry is still recognised as a
	// copy of what another stored at the earliest.
	historyDuplicates = recordHorizon + 5*time.Minute
	// recordQueue bounds the events waiting to be recorded; beyond it this
	// dashboard drops new ones (others may still record them).
	recordQueue = historyReplay
	// recordAttempt bounds one publish; a stream without a leader does not
	// answer at all.
	recordAttempt = 2 * time.Second
	// recordBackoffMin and recordBackoffMax bound the wait between attempts.
	recordBackoffMin = 100 * time.Millisecond
	recordBackoffMax = 2 * time.Second
)

// StreamConfig is the stream's definition; replicas is 3 on a cluster
// of three or more servers, else 1.
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "lifeline lifecycle events of every bot",
		Subjects:    []string{bus.HistoryWildcard},
		Duplicates:  historyDuplicates,
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      historyMaxAge,
		MaxBytes:    historyMaxSize,
		// Per bot, so that one bot's flood is its own loss.
		MaxMsgsPerSubject: PerBot,
		MaxMsgSize:        MaxMsgBytes,
		Replicas:          replicas,
	}
}

// Cluster is what History asks of the embedded bus server (a *bus.Server)
// to know when to replicate the stream.
type Cluster interface {
	JetStreamIsClustered() bool
	JetStreamClusterPeers() []string
}

// Config is what a History needs besides its bus client.
type Config struct {
	// Log receives its logs.
	Log *slog.Logger
	// Cluster is the embedded bus server, nil on an existing NATS: a
	// clustered one gets its stream replicated three times once it has
	// three servers.
	Cluster Cluster
	// Merge receives every event read from the stream, from the goroutine
	// of Run; it must drop events it has already seen.
	Merge func([]bus.Event)
}

// History records the events a dashboard receives into the stream and
// follows the stream back into Merge.
type History struct {
	nc  *nats.Conn
	cfg Config
	rec *recorder
}

// New makes a History on the bus client nc. It records at once: events
// given to Record before Run wait in its queue.
func New(nc *nats.Conn, cfg Config) *History {
	return &History{nc: nc, cfg: cfg, rec: newRecorder(cfg.Log)}
}

// Record queues the event data of bot name, exactly as the agent published
// it, for the stream. It never blocks: it is called from NATS callbacks.
func (h *History) Record(name string, data []byte) { h.rec.record(name, data) }

// Run makes sure the events stream exists, then follows it into Merge and
// stores what Record queued, until ctx ends. JetStream may need a few
// seconds after a cluster forms, so it retries until ctx ends; without
// JetStream (an existing NATS without it) it stops recording and returns,
// and the dashboard simply shows live events only.
func (h *History) Run(ctx context.Context) {
	rec := h.rec
	js, err := jetstream.New(h.nc)
	if err != nil {
		rec.disable()
		h.cfg.Log.Warn("no event history", "err", err)
		return
	}
	// Recording starts at once: events that arrive before the stream exists
	// wait in rec's queue and are stored when it does.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { rec.run(ctx, js) })
	var stream jetstream.Stream
	for {
		stream, err = h.openHistory(ctx, js)
		if err == nil {
			break
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			rec.disable()
			h.cfg.Log.Info("the bus has no JetStream; event history is kept in memory only")
			return
		}
		h.cfg.Log.Debug("event history not ready", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	wg.Go(func() { h.replicateHistory(ctx, js) })
	h.followHistory(ctx, stream)
}

// openHistory ensures the stream, with the current definition.
func (h *History) openHistory(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	stream, err := ensureStream(ctx, js, h.replicas())
	if err != nil {
		return nil, err
	}
	return upgradeStream(ctx, js, stream)
}

// replicateHistory raises the stream to three replicas once this clustered
// bus has three servers: a stream made while the cluster was still forming
// starts with one.
func (h *History) replicateHistory(ctx context.Context, js jetstream.JetStream) {
	if h.cfg.Cluster == nil || !h.cfg.Cluster.JetStreamIsClustered() {
		return
	}
	for {
		if h.replicas() == 3 {
			s, err := js.Stream(ctx, StreamName)
			if err == nil {
				cfg := s.CachedInfo().Config
				if cfg.Replicas >= 3 {
					return
				}
				cfg.Replicas = 3
				if _, err := js.UpdateStream(ctx, cfg); err == nil {
					h.cfg.Log.Info("event history replicated", "replicas", 3)
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// replicas is 3 when this dashboard's bus is a cluster of three or more
// JetStream servers, else 1.
func (h *History) replicas() int {
	if h.cfg.Cluster != nil && h.cfg.Cluster.JetStreamIsClustered() && len(h.cfg.Cluster.JetStreamClusterPeers()) >= 3 {
		return 3
	}
	return 1
}

func ensureStream(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return jsstream.Ensure(rctx, js, StreamConfig(replicas))
}

// upgradeStream brings a stream made by an older lifeline, which captured the
// agents' subject directly, had the default two-minute duplicate window, or
// had no per-bot or per-message limits, to the current definition. The events
// it holds stay, under their old subjects; replay reads them all the same.
// Setting the per-bot limit drops each bot's oldest events beyond it; larger
// events already stored stay, but the decoder refuses them on replay.
func upgradeStream(ctx context.Context, js jetstream.JetStream, s jetstream.Stream) (jetstream.Stream, error) {
	cfg := s.CachedInfo().Config
	want := StreamConfig(cfg.Replicas)
	if slices.Equal(cfg.Subjects, want.Subjects) && cfg.Duplicates >= want.Duplicates &&
		cfg.MaxMsgsPerSubject == want.MaxMsgsPerSubject && cfg.MaxMsgSize == want.MaxMsgSize {
		return s, nil
	}
	cfg.Subjects = want.Subjects
	cfg.Duplicates = max(cfg.Duplicates, want.Duplicates)
	cfg.MaxMsgsPerSubject, cfg.MaxMsgSize = want.MaxMsgsPerSubject, want.MaxMsgSize
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	// Dashboards doing this at once all write the same definition.
	s, err := js.UpdateStream(rctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("update event history stream: %w", err)
	}
	return s, nil
}

// followHistory merges the stream's newest historyReplay events into
// Merge, then every event stored after them, until ctx ends. Following, not
// reading once, matters: the events of a leader election are stored late, by
// the dashboards that received them, and one that started meanwhile missed
// them live. Merge drops what it has already seen.
func (h *History) followHistory(ctx context.Context, stream jetstream.Stream) {
	var next uint64 // the stream sequence to read next; 0 until known
	for {
		err := h.follow(ctx, stream, &next)
		if ctx.Err() != nil {
			return
		}
		h.cfg.Log.Debug("reading event history", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// follow reads the stream from *next (or its newest historyReplay events
// when *next is 0) until ctx ends or reading fails, advancing *next.
func (h *History) follow(ctx context.Context, stream jetstream.Stream, next *uint64) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := stream.Info(rctx)
	cancel()
	if err != nil {
		return fmt.Errorf("read event history: %w", err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if *next > last+1 {
		*next = 0 // the stream was made anew: read it from its start
	}
	if *next == 0 {
		if last >= historyReplay && last-historyReplay+1 > first {
			first = last - historyReplay + 1
		}
		*next = first // 0 for a stream that never held a message: from its start
	}
	// One attempt at each reset: the library's own retries would outlast
	// ctx, and the caller retries anyway.
	cfg := jetstream.OrderedConsumerConfig{MaxResetAttempts: 1}
	if *next > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, *next
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read event history: %w", err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read event history: %w", err)
	}
	defer msgs.Stop()
	for {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("read event history: %w", err)
		}
		if meta, err := msg.Metadata(); err == nil {
			*next = meta.Sequence.Stream + 1
		}
		if ev, err := bus.DecodeEvent(msg.Data()); err == nil {
			h.cfg.Merge([]bus.Event{ev})
		}
	}
}

// recorder copies the events this dashboard receives into the history stream.
// Its queue is fed from the NATS delivery goroutine without ever blocking it,
// and drained by run in a goroutine of its own.
type recorder struct {
	log   *slog.Logger
	queue chan recording
	off   chan struct{} // closed when the bus has no JetStream
	once  sync.Once
}

// recording is one event waiting to be stored.
type recording struct {
	subject string
	data    []byte // exactly as the agent published it
	at      time.Time
}

func newRecorder(log *slog.Logger) *recorder {
	return &recorder{log: log, queue: make(chan recording, recordQueue), off: make(chan struct{})}
}

// record queues the event data of bot name for the stream.
func (r *recorder) record(name string, data []byte) {
	select {
	case <-r.off:
		return
	default:
	}
	select {
	case r.queue <- recording{subject: bus.HistorySubject(name), data: data, at: time.Now()}:
	default:
		r.log.Warn("event history queue full; this dashboard does not record the event", "bot", name)
	}
}

// disable stops recording for good: the bus keeps no history.
func (r *recorder) disable() { r.once.Do(func() { close(r.off) }) }

// run stores queued events one at a time, in the order they arrived, until
// ctx ends or recording is disabled. What is still queued then is given up:
// the other dashboards received the same events.
func (r *recorder) run(ctx context.Context, js jetstream.JetStream) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.off:
			return
		case rec := <-r.queue:
			r.store(ctx, js, rec)
		}
	}
}

// store publishes rec until the stream acknowledges it, as stored or as a
// duplicate of another dashboard's copy, or until recordHorizon has passed.
func (r *recorder) store(ctx context.Context, js jetstream.JetStream, rec recording) {
	msg := &nats.Msg{Subject: rec.subject, Data: rec.data}
	sum := sha256.Sum256(rec.data)
	id := hex.EncodeToString(sum[:])
	wait := recordBackoffMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, recordAttempt)
		ack, err := js.PublishMsg(actx, msg, jetstream.WithMsgID(id))
		cancel()
		switch {
		case err == nil:
			r.log.Debug("event recorded in history", "subject", rec.subject, "seq", ack.Sequence, "duplicate", ack.Duplicate, "attempts", attempt)
			return
		case ctx.Err() != nil:
			return
		case time.Since(rec.at) > recordHorizon:
			r.log.Warn("event not recorded in history", "subject", rec.subject, "attempts", attempt, "err", err)
			return
		}
		// No stream yet, no leader (an election), or the same ID in flight
		// from another dashboard: all pass.
		r.log.Debug("event history not ready; retrying", "subject", rec.subject, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-r.off:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, recordBackoffMax)
	}
}
