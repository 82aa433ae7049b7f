package dashboard

import (
	"fmt"
	"log/slog"

	"github.com/gofiber/fiber/v3"
	"github.com/gofiber/fiber/v3/middleware/adaptor"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// GET /metrics serves every bot the dashboard knows in the Prometheus text
// format (SPEC "Operations"). The bots' metrics are worked out at scrape
// time from the state, so a heartbeat costs nothing more than it did; only
// event counts are kept as they come (see eventCounts).

// metricsInFlight bounds concurrent scrapes: one costs a pass over the bot
// table (10,000 bots at fleet size), and anyone with the viewer token may
// ask. The rest get 503 at once rather than queue.
const metricsInFlight = 4

// botStates are the states every bot gets a lifeline_bot_state series for,
// so that a state that is not current reads 0 rather than missing.
var botStates = [...]bus.State{
	bus.StateRunning, bus.StateStarting, bus.StateStopping, bus.StateStopped,
	bus.StateHung, bus.StateBackoff, bus.StateUnknown,
}

// countedEvents are the event types counted one by one; any other (a newer
// agent may add some, and anyone who may publish events may make them up)
// counts as "other", so a bot has at most len(countedEvents)+1 counters.
// The watchedEvents come first: those are reported from 0.
var countedEvents = [...]bus.EventType{
	bus.EventCrashed, bus.EventHung, bus.EventBackoff,
	bus.EventStarted, bus.EventExited, bus.EventKilled,
	bus.EventRestarted, bus.EventStopped, bus.EventAdopted,
}

// watchedEvents are the event types an alert would watch: once a bot had
// an event, they are reported even at 0.
var watchedEvents = countedEvents[:3]

// otherEvent labels the events of a type not in countedEvents.
const otherEvent = "other"

// eventCounts counts a bot's events by type (countedEvents, then other). It
// lives in the bot's record, so it is bounded and forgotten with it.
type eventCounts [len(countedEvents) + 1]uint64

// add counts one event of type t.
func (c *eventCounts) add(t bus.EventType) {
	for i, k := range countedEvents {
		if k == t {
			c[i]++
			return
		}
	}
	c[len(countedEvents)]++
}

// label is the type label of counter i.
func (eventCounts) label(i int) string {
	if i < len(countedEvents) {
		return string(countedEvents[i])
	}
	return otherEvent
}

// botSample is what a scrape reports of one bot, copied out of the state so
// that building the metrics does not hold the state's lock.
type botSample struct {
	name, host  string
	state       bus.State
	restarts    int
	age         float64 // seconds since the last heartbeat; valid if hasAge
	hasAge      bool
	rss         uint64
	cpu         float64
	hasProc     bool // rss and cpu are an agent's measure of a live process
	events      eventCounts
	eventsKnown bool // at least one event was counted
}

// metricsSnapshot returns a sample of every bot the state knows, plus the
// count of undecodable messages.
func (s *state) metricsSnapshot() ([]botSample, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]botSample, 0, len(s.bots))
	for name, b := range s.bots {
		st := effective(name, b, now)
		smp := botSample{
			name: name, host: st.Host, state: st.State, restarts: st.Restarts,
			rss: st.RSSBytes, cpu: st.CPUPercent, hasProc: st.Agent.Connected && st.PID != 0,
			events: b.evCount, eventsKnown: b.evCount != eventCounts{},
		}
		if smp.host == "" {
			smp.host = st.Agent.Host
		}
		if st.HeartbeatAgeMS != nil {
			smp.age, smp.hasAge = float64(*st.HeartbeatAgeMS)/1000, true
		}
		out = append(out, smp)
	}
	return out, s.bad
}

// botCollector reports the bots of a state; it is a prometheus.Collector
// reading the state at each scrape.
type botCollector struct {
	st *state

	bots, bad, up, state, restarts, age, rss, cpu, events *prometheus.Desc
}

func newBotCollector(st *state) *botCollector {
	return &botCollector{
		st:   st,
		bots: prometheus.NewDesc("lifeline_bots", "Number of bots the dashboard knows.", nil, nil),
		bad: prometheus.NewDesc("lifeline_bad_messages_total",
			"Heartbeats and events the dashboard received but could not decode.", nil, nil),
		up: prometheus.NewDesc("lifeline_bot_up",
			"Whether the bot is running (1) or not (0): its process runs and, with hang detection, heartbeats.",
			[]string{"bot", "host"}, nil),
		state: prometheus.NewDesc("lifeline_bot_state",
			"The bot's supervision state: 1 for the current state, 0 for the others.",
			[]string{"bot", "state"}, nil),
		restarts: prometheus.NewDesc("lifeline_bot_restarts_total",
			"Restarts of the bot since its agent started (crashes, hangs and requests).",
			[]string{"bot"}, nil),
		age: prometheus.NewDesc("lifeline_bot_heartbeat_age_seconds",
			"Seconds since the bot's last heartbeat; absent for a bot that never sent one.",
			[]string{"bot"}, nil),
		rss: prometheus.NewDesc("lifeline_bot_resident_memory_bytes",
			"Resident memory of the bot's process, as its agent last measured it.",
			[]string{"bot"}, nil),
		cpu: prometheus.NewDesc("lifeline_bot_cpu_percent",
			"CPU use of the bot's process in percent of one core, as its agent last measured it.",
			[]string{"bot"}, nil),
		events: prometheus.NewDesc("lifeline_events_total",
			"Lifecycle events of the bot this dashboard received since it started, by type.",
			[]string{"bot", "type"}, nil),
	}
}

func (c *botCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bots, c.bad, c.up, c.state, c.restarts, c.age, c.rss, c.cpu, c.events} {
		ch <- d
	}
}

func (c *botCollector) Collect(ch chan<- prometheus.Metric) {
	samples, bad := c.st.metricsSnapshot()
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, v, labels...)
		if err != nil {
			// A label value that is not UTF-8: the scrape reports it and
			// goes on with the other bots.
			m = prometheus.NewInvalidMetric(d, fmt.Errorf("make metric for %v: %w", labels, err))
		}
		ch <- m
	}
	send(c.bots, prometheus.GaugeValue, float64(len(samples)))
	send(c.bad, prometheus.CounterValue, float64(bad))
	for _, b := range samples {
		send(c.up, prometheus.GaugeValue, boolValue(b.state == bus.StateRunning), b.name, b.host)
		current := false
		for _, s := range botStates {
			current = current || s == b.state
			send(c.state, prometheus.GaugeValue, boolValue(s == b.state), b.name, string(s))
		}
		if !current && b.state != "" {
			// A state a newer agent added: shown rather than lost.
			send(c.state, prometheus.GaugeValue, 1, b.name, string(b.state))
		}
		send(c.restarts, prometheus.CounterValue, float64(b.restarts), b.name)
		if b.hasAge {
			send(c.age, prometheus.GaugeValue, b.age, b.name)
		}
		if b.hasProc {
			send(c.rss, prometheus.GaugeValue, float64(b.rss), b.name)
			send(c.cpu, prometheus.GaugeValue, b.cpu, b.name)
		}
		// The types seen, and the ones alerts watch from the bot's first
		// event on, so that its first crash is an increase from 0 rather
		// than a new series that increase() misses. Zeros for every type
		// would be a third of a fleet's series.
		if b.eventsKnown {
			for i, n := range b.events {
				if n > 0 || i < len(watchedEvents) {
					send(c.events, prometheus.CounterValue, float64(n), b.name, b.events.label(i))
				}
			}
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newMetricsRegistry returns a registry of its own (not the global default
// one: no global state) with the bots of st and the dashboard's own Go and
// process metrics.
func newMetricsRegistry(st *state) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newBotCollector(st),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return reg, nil
}

// promLog hands promhttp's errors to the dashboard's logger.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Error("metrics scrape", "err", fmt.Sprint(v...)) }

// metricsHandler serves the Prometheus metrics; it goes behind requireAuth.
// promhttp does the content negotiation and compression.
func (d *Dashboard) metricsHandler() fiber.Handler {
	reg, err := newMetricsRegistry(d.state)
	if err != nil {
		// Only a programming error (two collectors with one metric) gets
		// here; the rest of the dashboard still serves.
		d.log.Error("metrics disabled", "err", err)
		return func(c fiber.Ctx) error {
			return fail(c, fiber.StatusInternalServerError, "metrics unavailable")
		}
	}
	return adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            promLog{d.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: metricsInFlight,
	}))
}
