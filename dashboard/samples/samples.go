// Package samples keeps a short time series of every bot's CPU, memory and
// heartbeat age in a JetStream stream, for the page's charts. The agents
// already report these numbers in their status; a dashboard takes one sample
// of each bot it knows every Interval and stores it, so that a dashboard that
// restarts, or joins a cluster late, draws the same charts as the others.
//
// Like package history it knows nothing of HTTP or of the dashboard's state:
// it takes a NATS connection, a logger, the embedded server (for
// replication) and a Source of the bots' current numbers.
package samples

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/history"
	"github.com/lifeline-dev/lifeline/dashboard/internal/jsstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of the stream. One sample is about 150 bytes stored (payload,
// subject, message-ID header and the store's own overhead), so a bot's hour
// is about 54 KB, and MaxBytes holds a full hour for about 5,000 bots; with
// more, the oldest samples of all bots go first and the window shortens
// evenly, rather than the stream growing without bound.
const (
	// StreamName names the stream.
	StreamName = "LIFELINE_SAMPLES"
	// Wildcard is what the stream keeps; only dashboards (admin) may
	// publish there, as with the history.
	Wildcard = "lifeline.samples.*"
	// DefaultInterval is how often a dashboard samples every bot.
	DefaultInterval = 10 * time.Second
	// Window is how far back samples are kept.
	Window = time.Hour
	// PerBot bounds the samples kept per bot (per subject): an hour at
	// DefaultInterval.
	PerBot = int64(Window / DefaultInterval)
	// MaxBytes bounds the whole stream.
	MaxBytes = 256 << 20
	// maxMsgBytes bounds one stored sample; a sample is under 100 bytes.
	maxMsgBytes = 512
	// duplicates is the stream's duplicate window: dashboards of a cluster
	// sample the same bots in the same Interval slot, under the same
	// message ID, so each slot is stored once.
	duplicates = 2 * time.Minute
	// pendingMax bounds the publishes in flight, so 10,000 bots are
	// sampled at a steady pace instead of all at once.
	pendingMax = 512
	// readTimeout bounds reading one bot's series.
	readTimeout = 5 * time.Second
	// TimelineWindow is how far back Timeline reads the event history.
	TimelineWindow = 24 * time.Hour
)

// ErrNotReady means samples cannot be read: the bus has no JetStream (the
// dashboard runs with --no-history, or on an existing NATS without it), or
// the stream is not made yet.
var ErrNotReady = errors.New("samples are not available")

// Subject is where the samples of bot name are stored.
func Subject(name string) string { return "lifeline.samples." + name }

// Sample is one bot's numbers at one time. T is Unix milliseconds;
// HeartbeatAgeMS is nil when the bot had no heartbeat to age.
type Sample struct {
	T              int64   `json:"t"`
	CPU            float64 `json:"cpu"`
	RSS            uint64  `json:"rss"`
	HeartbeatAgeMS *int64  `json:"hb_age_ms"`
}

// Point is one bot's numbers now, as the Source gives them.
type Point struct {
	Name string
	Sample
}

// FromStatus makes the point of a bot from its status as the dashboard
// sees it at t.
func FromStatus(st bus.Status, t time.Time) Point {
	return Point{Name: st.Name, Sample: Sample{T: t.UnixMilli(), CPU: st.CPUPercent, RSS: st.RSSBytes, HeartbeatAgeMS: st.HeartbeatAgeMS}}
}

// Config is what a Sampler needs besides its bus client.
type Config struct {
	Log *slog.Logger
	// Cluster is the embedded bus server, nil on an existing NATS: a
	// clustered one gets the stream replicated three times once it has
	// three servers.
	Cluster history.Cluster
	// Interval is how often every bot is sampled; DefaultInterval when 0.
	Interval time.Duration
	// Source returns every bot's numbers at t; called from Run's goroutine.
	Source func(t time.Time) []Point
}

// Sampler stores samples of every bot and reads them back.
type Sampler struct {
	nc  *nats.Conn
	cfg Config

	mu     sync.Mutex
	js     jetstream.JetStream
	stream jetstream.Stream // nil until Run has made sure it exists
}

// New makes a Sampler on the bus client nc; Run starts it.
func New(nc *nats.Conn, cfg Config) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	return &Sampler{nc: nc, cfg: cfg}
}

// StreamConfig is the stream's definition; replicas is 3 on a cluster of
// three or more servers, else 1.
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              StreamName,
		Description:       "lifeline CPU, memory and heartbeat age of every bot, for the page's charts",
		Subjects:          []string{Wildcard},
		Duplicates:        duplicates,
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            Window,
		MaxBytes:          MaxBytes,
		MaxMsgsPerSubject: PerBot,
		MaxMsgSize:        maxMsgBytes,
		Replicas:          replicas,
	}
}

// Run makes sure the stream exists, then samples every Interval until ctx
// ends. Without JetStream it returns at once: the page then has no charts.
func (s *Sampler) Run(ctx context.Context) {
	js, err := jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(pendingMax))
	if err != nil {
		s.cfg.Log.Warn("no samples for charts", "err", err)
		return
	}
	var stream jetstream.Stream
	for {
		stream, err = s.ensureStream(ctx, js)
		if err == nil {
			break
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			s.cfg.Log.Info("the bus has no JetStream; the page shows no charts")
			return
		}
		s.cfg.Log.Debug("samples stream not ready", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	s.mu.Lock()
	s.js, s.stream = js, stream
	s.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.replicate(ctx, js) })
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		s.sample(ctx, js, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sample stores one sample of every bot. The message ID names the bot and
// the Interval slot, so the dashboards of a cluster store each slot once.
func (s *Sampler) sample(ctx context.Context, js jetstream.JetStream, now time.Time) {
	slot := strconv.FormatInt(now.UnixNano()/int64(s.cfg.Interval), 10)
	points := s.cfg.Source(now)
	// A round may wait for the server's acks until the next one is due, but
	// not longer: with the default stall wait (200 ms) a busy server made a
	// bot miss its sample although the round had time to spare.
	end := now.Add(s.cfg.Interval)
	failed := 0
	for _, p := range points {
		data, err := json.Marshal(p.Sample)
		if err != nil {
			continue
		}
		wait := max(time.Until(end), time.Millisecond)
		if _, err := js.PublishAsync(Subject(p.Name), data, jetstream.WithMsgID(p.Name+"@"+slot), jetstream.WithStallWait(wait)); err != nil {
			failed++
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
	case <-time.After(max(time.Until(end), time.Millisecond)):
		failed += js.PublishAsyncPending()
	}
	if failed > 0 {
		s.cfg.Log.Debug("some samples not stored", "bots", len(points), "failed", failed)
	}
}

func (s *Sampler) ensureStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := jsstream.Ensure(rctx, js, StreamConfig(s.replicas()))
	if err != nil {
		return nil, fmt.Errorf("open samples stream: %w", err)
	}
	return st, nil
}

// replicate raises the stream to three replicas once this clustered bus has
// three servers, as the history does.
func (s *Sampler) replicate(ctx context.Context, js jetstream.JetStream) {
	if s.cfg.Cluster == nil || !s.cfg.Cluster.JetStreamIsClustered() {
		return
	}
	for {
		if s.replicas() == 3 {
			if st, err := js.Stream(ctx, StreamName); err == nil {
				cfg := st.CachedInfo().Config
				if cfg.Replicas >= 3 {
					return
				}
				cfg.Replicas = 3
				if _, err := js.UpdateStream(ctx, cfg); err == nil {
					s.cfg.Log.Info("samples replicated", "replicas", 3)
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

func (s *Sampler) replicas() int {
	if s.cfg.Cluster != nil && s.cfg.Cluster.JetStreamIsClustered() && len(s.cfg.Cluster.JetStreamClusterPeers()) >= 3 {
		return 3
	}
	return 1
}

func (s *Sampler) ready() (jetstream.JetStream, jetstream.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream == nil {
		return nil, nil, ErrNotReady
	}
	return s.js, s.stream, nil
}

// Samples returns the kept samples of bot name, oldest first: at most
// PerBot, over the last Window.
func (s *Sampler) Samples(ctx context.Context, name string) ([]Sample, error) {
	_, stream, err := s.ready()
	if err != nil {
		return nil, err
	}
	out := make([]Sample, 0, PerBot)
	err = readSubject(ctx, stream, Subject(name), time.Time{}, int(PerBot), func(data []byte) {
		var smp Sample
		if json.Unmarshal(data, &smp) == nil {
			out = append(out, smp)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read samples of %s: %w", name, err)
	}
	return out, nil
}

// Timeline returns the lifecycle events of bot name over the last
// TimelineWindow, oldest first, read from the event history stream, which
// keeps them for every dashboard (see package history).
func (s *Sampler) Timeline(ctx context.Context, name string, now time.Time) ([]bus.Event, error) {
	js, _, err := s.ready()
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	stream, err := js.Stream(rctx, history.StreamName)
	if err != nil {
		return nil, fmt.Errorf("read timeline of %s: %w: %w", name, ErrNotReady, err)
	}
	out := []bus.Event{}
	err = readSubject(ctx, stream, bus.HistorySubject(name), now.Add(-TimelineWindow), history.PerBot, func(data []byte) {
		if ev, err := bus.DecodeEvent(data); err == nil && ev.Name == name {
			out = append(out, ev)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read timeline of %s: %w", name, err)
	}
	return out, nil
}

// readSubject passes the data of every message of subject in stream, from
// since (the start when zero), to each, at most limit of them. It stops
// when the stream has nothing more for subject, so it never waits for new
// messages.
func readSubject(ctx context.Context, stream jetstream.Stream, subject string, since time.Time, limit int, each func([]byte)) error {
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	last, err := stream.GetLastMsgForSubject(rctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !since.IsZero() && last.Time.Before(since) {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, MaxResetAttempts: 1}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := stream.OrderedConsumer(rctx, cfg)
	if err != nil {
		return err
	}
	msgs, err := cons.Messages()
	if err != nil {
		return err
	}
	defer msgs.Stop()
	for n := 0; n < limit; n++ {
		msg, err := msgs.Next(jetstream.NextContext(rctx))
		if err != nil {
			return err
		}
		each(msg.Data())
		// Up to what is there now, not to the last message seen before
		// reading: one stored meanwhile pushes out the oldest, and stopping
		// at the old last would return one sample short. limit bounds it.
		meta, err := msg.Metadata()
		if err != nil || meta.NumPending == 0 {
			return nil
		}
	}
	return nil
}
