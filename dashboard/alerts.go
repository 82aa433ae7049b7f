package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/history"
	"github.com/lifeline-dev/lifeline/dashboard/internal/jsstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
)

// Alerts. Every dashboard follows every bot, so every dashboard of a
// cluster sees each transition that deserves an alert. None of them sends
// it directly: each publishes it, once per configured URL, to the
// LIFELINE_ALERTS work-queue stream with a message ID derived from the
// event itself (bot, event type, event time and PID), so JetStream's
// duplicate window keeps one copy however many dashboards publish it. All
// dashboards pull from one shared durable consumer: the copy goes to one of
// them, which sends it and acks it; one that dies before acking leaves it
// to another after alertAckWait. No election of our own.
//
// Per bot there is at most one open incident: the first crash, hang,
// backoff or loss of its agent opens it (one alert); further trouble only
// keeps it open; it closes, with one recovery message, once the bot runs
// with its agent answering and nothing went wrong for Config.AlertStable.
// A crash loop is thus one alert and one recovery.
const (
	// AlertStreamName names the work-queue stream of alerts to send.
	AlertStreamName = "LIFELINE_ALERTS"
	alertSubject    = "lifeline.alerts"
	alertConsumer   = "lifeline-alerts"
	// alertDuplicates outlasts the spread between dashboards seeing the
	// same transition (a few poll rounds) by far.
	alertDuplicates = 10 * time.Minute
	// alertAckWait is how long a dashboard may hold an alert without
	// acking it before another gets it: a send takes at most
	// alertSendTimeout.
	alertAckWait     = 15 * time.Second
	alertSendTimeout = 10 * time.Second
	alertMaxAge      = 24 * time.Hour
	// DefaultAlertStable is how long a bot must run, agent answering and
	// nothing going wrong, before its recovery is sent: longer than the
	// agent's first backoff steps, so a crash loop stays one incident.
	DefaultAlertStable = 10 * time.Second
	// DefaultAlertRetry is the first wait before a failed delivery is
	// tried again; it doubles up to alertRetryMax.
	DefaultAlertRetry = 2 * time.Second
	alertRetryMax     = 5 * time.Minute
	// alertLostAfter is how long an agent that answered before must stay
	// silent before its loss alerts: an agent restarting is no news.
	alertLostAfter = 3 * time.Second
	// alertFailuresKept bounds the failures /api/alerts shows.
	alertFailuresKept = 20
	alertQueue        = 1024
	alertPublishFor   = 10 * time.Minute
)

// ErrAlertURL is a notification URL that cannot be used.
var ErrAlertURL = errors.New("bad alert URL")

// errAlertTimeout is a send that did not end in alertSendTimeout.
var errAlertTimeout = errors.New("send alert: timed out")

// alertTarget is one notification URL, known by a short digest (the same on
// every dashboard given the same URL) so the URL never travels on the bus.
type alertTarget struct {
	id      string
	service string // the URL's scheme, safe to show
	secrets []string
	sender  types.Service
	timeout time.Duration // of one send: alertSendTimeout
}

// newAlertTargets checks every URL and makes its sender. Errors name the
// URL by its position and service only.
func newAlertTargets(urls []string) ([]*alertTarget, error) {
	var out []*alertTarget
	for i, raw := range urls {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		t := &alertTarget{secrets: urlSecrets(raw)}
		sum := sha256.Sum256([]byte(raw))
		t.id = hex.EncodeToString(sum[:6])
		t.service, _, _ = strings.Cut(raw, "://")
		s, err := newAlertSender(raw)
		if err != nil {
			return nil, fmt.Errorf("%w #%d (%s): %s", ErrAlertURL, i+1, t.service, t.redact(err.Error()))
		}
		t.sender, t.timeout = s, alertSendTimeout
		out = append(out, t)
	}
	return out, nil
}

// urlSecrets lists the parts of a URL that may be secret (user, password,
// host, path segments, query values), longest first, to blank them out of
// error texts.
func urlSecrets(raw string) []string {
	parts := []string{raw}
	if u, err := url.Parse(raw); err == nil {
		if u.User != nil {
			parts = append(parts, u.User.Username())
			if p, ok := u.User.Password(); ok {
				parts = append(parts, p)
			}
		}
		parts = append(parts, u.Host)
		parts = append(parts, strings.Split(u.Path, "/")...)
		for _, vs := range u.Query() {
			parts = append(parts, vs...)
		}
	}
	parts = slices.DeleteFunc(parts, func(p string) bool { return len(p) < 4 })
	slices.SortFunc(parts, func(a, b string) int { return len(b) - len(a) })
	return parts
}

// redact blanks the URL's secrets out of s.
func (t *alertTarget) redact(s string) string {
	for _, p := range t.secrets {
		s = strings.ReplaceAll(s, p, "***")
	}
	return s
}

// name is how logs and the page name the target: service and digest.
func (t *alertTarget) name() string { return t.service + "#" + t.id }

// send delivers one message, or gives up after t.timeout. Not every
// shoutrrr service bounds its own requests, and a message's ack deadline
// (alertAckWait) must outlast the send; a send still stuck then is left to
// end on its own, with its answer dropped (as shoutrrr's router does).
func (t *alertTarget) send(title, body string) error {
	done := make(chan error, 1)
	go func() { done <- t.sender.Send(body, &types.Params{"title": title}) }()
	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return errors.New(t.redact(err.Error()))
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("%w: no answer in %s", errAlertTimeout, t.timeout)
	}
}

// SendTestAlert sends one test message to each URL, for
// `lifeline dashboard --alert-test`. The error names failing URLs by
// position and service, never in full.
func SendTestAlert(urls []string, host, publicURL string) error {
	targets, err := newAlertTargets(urls)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: none given", ErrAlertURL)
	}
	body := "This is a test message from the lifeline dashboard on " + host + "."
	if publicURL != "" {
		body += "\nPage: " + publicURL
	}
	var errs []error
	for i, t := range targets {
		if err := t.send("lifeline: test alert", body); err != nil {
			errs = append(errs, fmt.Errorf("send test alert to #%d (%s): %w", i+1, t.service, err))
		}
	}
	return errors.Join(errs...)
}

// alertMsg is one message to send, as queued in the stream.
type alertMsg struct {
	Target string    `json:"target"`
	Bot    string    `json:"bot"`
	Kind   string    `json:"kind"` // "alert" or "recovery"
	Title  string    `json:"title"`
	Body   string    `json:"body"`
	Time   time.Time `json:"time"`
}

// AlertFailure is a delivery that failed, as /api/alerts shows it.
type AlertFailure struct {
	Time     time.Time `json:"time"`
	Bot      string    `json:"bot"`
	Kind     string    `json:"kind"`
	Target   string    `json:"target"`
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
}

// AlertsInfo is what GET /api/alerts answers.
type AlertsInfo struct {
	Targets  []string       `json:"targets"`
	Sent     int64          `json:"sent"`
	LastSent *time.Time     `json:"last_sent,omitempty"`
	Failing  bool           `json:"failing"` // the last attempt failed
	Failures []AlertFailure `json:"failures"`
}

// incident is a bot's open alert.
type incident struct {
	id      string
	lastBad time.Time
	what    string
}

// alerter turns the bots' transitions into alerts and sends those the
// shared consumer hands this dashboard.
type alerter struct {
	log     *slog.Logger
	state   *state
	nc      *nats.Conn
	cluster history.Cluster // nil on an existing NATS
	targets []*alertTarget
	public  string
	stable  time.Duration
	retry   time.Duration
	in      chan bus.Event
	now     func() time.Time

	// Owned by run's goroutine.
	open map[string]*incident
	lost map[string]time.Time // agent silent since

	mu       sync.Mutex
	sent     int64
	lastSent time.Time
	failing  bool
	failures []AlertFailure
}

func newAlerter(log *slog.Logger, st *state, nc *nats.Conn, cluster history.Cluster, targets []*alertTarget, cfg Config) *alerter {
	a := &alerter{log: log.With("part", "alerts"), state: st, nc: nc, cluster: cluster, targets: targets,
		public: strings.TrimSuffix(cfg.PublicURL, "/"), stable: cfg.AlertStable, retry: cfg.AlertRetry,
		in: make(chan bus.Event, alertQueue), now: time.Now,
		open: make(map[string]*incident), lost: make(map[string]time.Time)}
	if a.stable <= 0 {
		a.stable = DefaultAlertStable
	}
	if a.retry <= 0 {
		a.retry = DefaultAlertRetry
	}
	return a
}

// event hands a live event to the alerter without blocking the bus
// callback that received it.
func (a *alerter) event(e bus.Event) {
	select {
	case a.in <- e:
	default:
		a.log.Warn("alert queue full; this dashboard skips the event (others may alert it)", "bot", e.Name, "type", e.Type)
	}
}

// info answers /api/alerts.
func (a *alerter) info() AlertsInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := AlertsInfo{Sent: a.sent, Failing: a.failing, Failures: slices.Clone(a.failures), Targets: []string{}}
	if out.Failures == nil {
		out.Failures = []AlertFailure{}
	}
	slices.Reverse(out.Failures)
	if !a.lastSent.IsZero() {
		t := a.lastSent
		out.LastSent = &t
	}
	for _, t := range a.targets {
		out.Targets = append(out.Targets, t.name())
	}
	return out
}

// run follows transitions and delivers alerts until ctx ends.
func (a *alerter) run(ctx context.Context) {
	js, err := jetstream.New(a.nc)
	if err != nil {
		a.log.Error("alerts off: no JetStream client", "err", err)
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.deliver(ctx, js) })
	wg.Go(func() { a.replicate(ctx, js) })
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-a.in:
			a.onEvent(ctx, js, &wg, e)
		case <-t.C:
			a.scan(ctx, js, &wg)
		}
	}
}

// alertingEvent reports whether an event of this type opens an incident.
func alertingEvent(t bus.EventType) bool {
	switch t {
	case bus.EventCrashed, bus.EventHung, bus.EventKilled, bus.EventBackoff:
		return true
	}
	return false
}

func (a *alerter) onEvent(ctx context.Context, js jetstream.JetStream, wg *sync.WaitGroup, e bus.Event) {
	if !alertingEvent(e.Type) {
		return
	}
	if inc := a.open[e.Name]; inc != nil {
		inc.lastBad = a.now()
		return
	}
	id := fmt.Sprintf("%s.%s.%d.%d", e.Name, e.Type, e.Time.UnixNano(), e.PID)
	what := string(e.Type)
	switch e.Type {
	case bus.EventHung, bus.EventKilled:
		what = "hung"
	case bus.EventBackoff:
		what = "entered backoff"
	}
	if e.Reason != "" {
		what += ": " + e.Reason
	}
	a.open[e.Name] = &incident{id: id, lastBad: a.now(), what: what}
	a.publish(ctx, js, wg, id, "alert", e.Name, what, e.Time)
}

// scan notices agents that went silent and bots that recovered.
func (a *alerter) scan(ctx context.Context, js jetstream.JetStream, wg *sync.WaitGroup) {
	now := a.now()
	all := a.state.all()
	known := make(map[string]bool, len(all))
	for _, st := range all {
		known[st.Name] = true
	}
	// A bot the dashboard forgot (silent for minutes) takes its incident
	// along: nothing will ever say it recovered.
	maps.DeleteFunc(a.open, func(name string, _ *incident) bool { return !known[name] })
	maps.DeleteFunc(a.lost, func(name string, _ time.Time) bool { return !known[name] })
	for _, st := range all {
		name := st.Name
		inc := a.open[name]
		if !st.Agent.Connected && st.Agent.PID != 0 {
			since, ok := a.lost[name]
			if !ok {
				a.lost[name] = now
				since = now
			}
			switch {
			case inc != nil:
				inc.lastBad = now
			case now.Sub(since) >= alertLostAfter:
				id := fmt.Sprintf("%s.agent-lost.%s.%d", name, st.Agent.Host, st.Agent.PID)
				what := "lost its agent: no agent answers"
				a.open[name] = &incident{id: id, lastBad: now, what: what}
				a.publish(ctx, js, wg, id, "alert", name, what, time.Time{})
			}
			continue
		}
		delete(a.lost, name)
		if inc != nil && st.Agent.Connected && st.State == bus.StateRunning && now.Sub(inc.lastBad) >= a.stable {
			delete(a.open, name)
			a.publish(ctx, js, wg, "recovered."+inc.id, "recovery", name, "running again", time.Time{})
		}
	}
}

// publish queues one message per target in the stream, retrying in the
// background until JetStream takes it (as new or as a duplicate).
func (a *alerter) publish(ctx context.Context, js jetstream.JetStream, wg *sync.WaitGroup, id, kind, bot, what string, at time.Time) {
	title, body := a.render(kind, bot, what, at)
	a.log.Info("alert due", "bot", bot, "kind", kind, "what", what)
	for _, t := range a.targets {
		data, _ := json.Marshal(alertMsg{Target: t.id, Bot: bot, Kind: kind, Title: title, Body: body, Time: a.now().UTC()})
		msg := &nats.Msg{Subject: alertSubject + "." + t.id, Data: data}
		msgID := id + "." + t.id
		wg.Go(func() {
			start, wait := time.Now(), 100*time.Millisecond
			for {
				if err := a.ensureStream(ctx, js); err == nil {
					pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					_, err = js.PublishMsg(pctx, msg, jetstream.WithMsgID(msgID))
					cancel()
					if err == nil {
						return
					}
					a.log.Debug("queueing alert failed; retrying", "bot", bot, "err", err)
				}
				if ctx.Err() != nil || time.Since(start) > alertPublishFor {
					a.log.Warn("alert not queued", "bot", bot, "kind", kind)
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				wait = min(wait*2, 2*time.Second)
			}
		})
	}
}

// render writes the message: the bot, the host, what happened, the last
// exit, and the page link when there is one. at is the time of the event
// that opened the incident, zero without: the agent's status may not tell
// of that exit yet, so an exit well before it is the previous one.
func (a *alerter) render(kind, bot, what string, at time.Time) (title, body string) {
	st, _ := a.state.status(bot)
	host := st.Host
	if host == "" {
		host = st.Agent.Host
	}
	if host == "" {
		host = "unknown host"
	}
	if kind == "recovery" {
		title = fmt.Sprintf("lifeline: %s is running again on %s", bot, host)
	} else {
		title = fmt.Sprintf("lifeline: %s %s on %s", bot, strings.SplitN(what, ":", 2)[0], host)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Bot %s on host %s %s.", bot, host, what)
	if x := st.LastExit; x != nil {
		label := "Last exit"
		if !at.IsZero() && x.At.Before(at.Add(-2*time.Second)) {
			label = "Previous exit"
		}
		fmt.Fprintf(&b, "\n%s: code %d", label, x.Code)
		if x.Signal != "" {
			fmt.Fprintf(&b, ", signal %s", x.Signal)
		}
		if x.Reason != "" {
			fmt.Fprintf(&b, " (%s)", x.Reason)
		}
		fmt.Fprintf(&b, " at %s.", x.At.UTC().Format(time.RFC3339))
	}
	if a.public != "" {
		fmt.Fprintf(&b, "\nPage: %s/#bot=%s", a.public, url.QueryEscape(bot))
	}
	return title, b.String()
}

// streamConfig is the alerts stream: a work queue, each message removed
// once a dashboard acks it.
func alertStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        AlertStreamName,
		Description: "lifeline alerts waiting to be sent",
		Subjects:    []string{alertSubject + ".*"},
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  alertDuplicates,
		Storage:     jetstream.FileStorage,
		MaxAge:      alertMaxAge,
		MaxMsgs:     100_000,
		Replicas:    replicas,
	}
}

func (a *alerter) replicas() int {
	if a.cluster != nil && a.cluster.JetStreamIsClustered() && len(a.cluster.JetStreamClusterPeers()) >= 3 {
		return 3
	}
	return 1
}

// ensureStream makes the stream and the shared consumer unless they exist.
func (a *alerter) ensureStream(ctx context.Context, js jetstream.JetStream) error {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := jsstream.Ensure(rctx, js, alertStreamConfig(a.replicas()))
	if err != nil {
		return fmt.Errorf("open alert stream: %w", err)
	}
	if _, err := s.Consumer(rctx, alertConsumer); err == nil {
		return nil
	}
	// Every dashboard writes the same definition, so racing is harmless.
	if _, err = s.CreateOrUpdateConsumer(rctx, alertConsumerConfig(s.CachedInfo().Config.Replicas)); err != nil {
		return fmt.Errorf("open alert consumer: %w", err)
	}
	return nil
}

// alertConsumerConfig is the consumer every dashboard pulls from. Its
// replicas are set, not inherited: a consumer made on a stream of one
// replica stays on one server when the stream grows, and would die with it.
func alertConsumerConfig(replicas int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       alertConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       alertAckWait,
		MaxDeliver:    -1,
		MaxAckPending: 256,
		Replicas:      replicas,
	}
}

// replicate raises the stream and consumer to three replicas once the
// cluster has three servers, so an alert survives the death of the
// server that held it.
func (a *alerter) replicate(ctx context.Context, js jetstream.JetStream) {
	if a.cluster == nil || !a.cluster.JetStreamIsClustered() {
		return
	}
	for {
		if a.replicas() == 3 && a.ensureStream(ctx, js) == nil {
			if s, err := js.Stream(ctx, AlertStreamName); err == nil {
				cfg := s.CachedInfo().Config
				if cfg.Replicas < 3 {
					cfg.Replicas = 3
					s, err = js.UpdateStream(ctx, cfg)
				}
				if err == nil {
					c, cerr := s.Consumer(ctx, alertConsumer)
					if cerr == nil && c.CachedInfo().Config.Replicas < 3 {
						_, cerr = s.UpdateConsumer(ctx, alertConsumerConfig(3))
					}
					if cerr == nil {
						a.log.Info("alert queue replicated", "replicas", 3)
						return
					}
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

// deliver pulls from the shared consumer and sends, until ctx ends.
func (a *alerter) deliver(ctx context.Context, js jetstream.JetStream) {
	for ctx.Err() == nil {
		err := a.consume(ctx, js)
		if ctx.Err() != nil {
			return
		}
		a.log.Debug("alert consumer not ready", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (a *alerter) consume(ctx context.Context, js jetstream.JetStream) error {
	if err := a.ensureStream(ctx, js); err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, AlertStreamName, alertConsumer)
	if err != nil {
		return fmt.Errorf("open alert consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(8))
	if err != nil {
		return fmt.Errorf("pull alerts: %w", err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("pull alerts: %w", err)
		}
		a.handle(msg)
	}
}

// handle sends one queued message and acks it, or asks for it again later.
func (a *alerter) handle(msg jetstream.Msg) {
	var m alertMsg
	if err := json.Unmarshal(msg.Data(), &m); err != nil {
		msg.Term()
		return
	}
	attempts := 1
	if meta, err := msg.Metadata(); err == nil {
		attempts = int(meta.NumDelivered)
	}
	i := slices.IndexFunc(a.targets, func(t *alertTarget) bool { return t.id == m.Target })
	if i < 0 {
		// Another dashboard was given this URL: leave it to it.
		msg.NakWithDelay(5 * time.Second)
		return
	}
	t := a.targets[i]
	a.log.Debug("sending alert", "bot", m.Bot, "kind", m.Kind, "target", t.name(), "attempts", attempts)
	err := t.send(m.Title, m.Body)
	a.mu.Lock()
	if err == nil {
		a.sent++
		a.lastSent = a.now()
		a.failing = false
	} else {
		a.failing = true
		a.failures = append(a.failures, AlertFailure{Time: a.now().UTC(), Bot: m.Bot, Kind: m.Kind, Target: t.name(), Error: err.Error(), Attempts: attempts})
		if len(a.failures) > alertFailuresKept {
			a.failures = a.failures[len(a.failures)-alertFailuresKept:]
		}
	}
	a.mu.Unlock()
	if err == nil {
		a.log.Info("alert sent", "bot", m.Bot, "kind", m.Kind, "target", t.name(), "attempts", attempts)
		actx, cancel := context.WithTimeout(context.Background(), alertSendTimeout)
		msg.DoubleAck(actx) // a lost ack means one more message, never none
		cancel()
		return
	}
	delay := a.retry
	for n := 1; n < attempts && delay < alertRetryMax; n++ {
		delay *= 2
	}
	delay = min(delay, alertRetryMax)
	a.log.Warn("alert not delivered; retrying", "bot", m.Bot, "kind", m.Kind, "target", t.name(), "attempts", attempts, "retry_in", delay, "err", err)
	msg.NakWithDelay(delay)
}
