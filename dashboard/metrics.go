package dashboard

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/gofiber/fiber/v3"
	"github.com/lifeline-dev/lifeline/bus"
)

// GET /metrics serves every bot the dashboard knows in the Prometheus text
// format (SPEC "Operations"). The bots' metrics are worked out at scrape
// time from the state, so a heartbeat costs nothing more than it did; only
// event counts are kept as they come (see eventCounts).
//
// The library is VictoriaMetrics/metrics, not client_golang: every start
// of the one lifeline binary (each `lifeline status`, each respawned bot)
// paid ~4-5 ms for client_golang's dependencies and their package inits;
// VictoriaMetrics/metrics has no dependencies. Its Set keeps no HELP texts
// and no values computed at scrape time, so the bots' families are
// written here as exposition lines (metricWriter), and the Set only
// strings them together with the library's go_* and process_* metrics.

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

// metricFamily is one lifeline_ metric: its name, type and help text.
type metricFamily struct{ name, typ, help string }

// The lifeline_ families, in the order a scrape writes them.
var (
	famBots = metricFamily{"lifeline_bots", "gauge", "Number of bots the dashboard knows."}
	famBad  = metricFamily{"lifeline_bad_messages_total", "counter",
		"Heartbeats and events the dashboard received but could not decode."}
	famUp = metricFamily{"lifeline_bot_up", "gauge",
		"Whether the bot is running (1) or not (0): its process runs and, with hang detection, heartbeats."}
	famState = metricFamily{"lifeline_bot_state", "gauge",
		"The bot's supervision state: 1 for the current state, 0 for the others."}
	famRestarts = metricFamily{"lifeline_bot_restarts_total", "counter",
		"Restarts of the bot since its agent started (crashes, hangs and requests)."}
	famAge = metricFamily{"lifeline_bot_heartbeat_age_seconds", "gauge",
		"Seconds since the bot's last heartbeat; absent for a bot that never sent one."}
	famRSS = metricFamily{"lifeline_bot_resident_memory_bytes", "gauge",
		"Resident memory of the bot's process, as its agent last measured it."}
	famCPU = metricFamily{"lifeline_bot_cpu_percent", "gauge",
		"CPU use of the bot's process in percent of one core, as its agent last measured it."}
	famEvents = metricFamily{"lifeline_events_total", "counter",
		"Lifecycle events of the bot this dashboard received since it started, by type."}
)

// metricFamilies lists every lifeline_ family a scrape may serve.
var metricFamilies = [...]metricFamily{famBots, famBad, famUp, famState, famRestarts, famAge, famRSS, famCPU, famEvents}

// metricWriter appends Prometheus text exposition lines to a buffer.
type metricWriter struct{ b []byte }

// family starts family f with its HELP and TYPE lines; its samples must
// follow before the next family (the format wants a family in one piece).
func (m *metricWriter) family(f metricFamily) {
	m.b = append(m.b, "# HELP "...)
	m.b = append(m.b, f.name...)
	m.b = append(m.b, ' ')
	m.b = append(m.b, f.help...) // no backslash or newline in our texts
	m.b = append(m.b, "\n# TYPE "...)
	m.b = append(m.b, f.name...)
	m.b = append(m.b, ' ')
	m.b = append(m.b, f.typ...)
	m.b = append(m.b, '\n')
}

// sample writes one series of f: labels are name, value pairs; values
// must be valid UTF-8 (see validLabels).
func (m *metricWriter) sample(f metricFamily, v float64, labels ...string) {
	m.b = append(m.b, f.name...)
	if len(labels) > 0 {
		m.b = append(m.b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.b = append(m.b, ',')
			}
			m.b = append(m.b, labels[i]...)
			m.b = append(m.b, `="`...)
			m.b = appendLabelValue(m.b, labels[i+1])
			m.b = append(m.b, '"')
		}
		m.b = append(m.b, '}')
	}
	m.b = append(m.b, ' ')
	m.b = strconv.AppendFloat(m.b, v, 'g', -1, 64) // +Inf, -Inf and NaN as the format spells them
	m.b = append(m.b, '\n')
}

// appendLabelValue escapes a label value as the text format wants:
// backslash, double quote and line feed.
func appendLabelValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// validLabels tells whether a bot's label values are UTF-8, as Prometheus
// requires. A bot whose are not is left out of the scrape (and logged)
// rather than fail the whole scrape or be merged with another bot by a
// replacement character.
func validLabels(b botSample) bool {
	return utf8.ValidString(b.name) && utf8.ValidString(b.host) && utf8.ValidString(string(b.state))
}

// writeBotMetrics writes the lifeline_ families of st, worked out now.
func writeBotMetrics(w io.Writer, st *state, log *slog.Logger) {
	samples, bad := st.metricsSnapshot()
	samples = slices.DeleteFunc(samples, func(b botSample) bool {
		if validLabels(b) {
			return false
		}
		log.Error("metrics scrape: bot left out", "bot", strconv.Quote(b.name), "err", "label value not UTF-8")
		return true
	})
	// In name order, as Prometheus's own clients write series: a scrape
	// reads the same from one time to the next.
	slices.SortFunc(samples, func(a, b botSample) int { return strings.Compare(a.name, b.name) })
	m := metricWriter{b: make([]byte, 0, 64+len(samples)*1400)}
	m.family(famBots)
	m.sample(famBots, float64(len(samples)))
	m.family(famBad)
	m.sample(famBad, float64(bad))
	m.family(famUp)
	for _, b := range samples {
		m.sample(famUp, boolValue(b.state == bus.StateRunning), "bot", b.name, "host", b.host)
	}
	m.family(famState)
	for _, b := range samples {
		current := false
		for _, s := range botStates {
			current = current || s == b.state
			m.sample(famState, boolValue(s == b.state), "bot", b.name, "state", string(s))
		}
		if !current && b.state != "" {
			// A state a newer agent added: shown rather than lost.
			m.sample(famState, 1, "bot", b.name, "state", string(b.state))
		}
	}
	m.family(famRestarts)
	for _, b := range samples {
		m.sample(famRestarts, float64(b.restarts), "bot", b.name)
	}
	m.family(famAge)
	for _, b := range samples {
		if b.hasAge {
			m.sample(famAge, b.age, "bot", b.name)
		}
	}
	m.family(famRSS)
	for _, b := range samples {
		if b.hasProc {
			m.sample(famRSS, float64(b.rss), "bot", b.name)
		}
	}
	m.family(famCPU)
	for _, b := range samples {
		if b.hasProc {
			m.sample(famCPU, b.cpu, "bot", b.name)
		}
	}
	m.family(famEvents)
	for _, b := range samples {
		// The types seen, and the ones alerts watch from the bot's first
		// event on, so that its first crash is an increase from 0 rather
		// than a new series that increase() misses. Zeros for every type
		// would be a third of a fleet's series.
		if !b.eventsKnown {
			continue
		}
		for i, n := range b.events {
			if n > 0 || i < len(watchedEvents) {
				m.sample(famEvents, float64(n), "bot", b.name, "type", b.events.label(i))
			}
		}
	}
	// A family with no sample yet keeps its HELP and TYPE lines: valid,
	// and it tells a reader the metric exists.
	w.Write(m.b) //nolint:errcheck // Set.WritePrometheus writes to a bytes.Buffer
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newMetricsSet returns a Set of its own (not the library's default one:
// no global state) that writes the bots of st and the dashboard's own Go
// and process metrics.
func newMetricsSet(st *state, log *slog.Logger) *metrics.Set {
	set := metrics.NewSet()
	set.RegisterMetricsWriter(func(w io.Writer) { writeBotMetrics(w, st, log) })
	set.RegisterMetricsWriter(metrics.WriteProcessMetrics)
	return set
}

// metricsContentType is the Prometheus text format, version 0.0.4.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// serveMetrics returns a handler serving set: at most metricsInFlight
// scrapes at once (the rest get 503), gzipped when the scraper accepts it
// (Prometheus does; 10,000 bots are megabytes of text).
func serveMetrics(set *metrics.Set, log *slog.Logger) fiber.Handler {
	slots := make(chan struct{}, metricsInFlight)
	return func(c fiber.Ctx) error {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			return fail(c, fiber.StatusServiceUnavailable, "too many scrapes at once")
		}
		var text bytes.Buffer
		set.WritePrometheus(&text)
		c.Set(fiber.HeaderContentType, metricsContentType)
		c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
		if c.AcceptsEncodings("gzip") != "gzip" {
			return c.Send(text.Bytes())
		}
		var zipped bytes.Buffer
		zw := gzip.NewWriter(&zipped)
		if _, err := zw.Write(text.Bytes()); err != nil {
			log.Error("metrics scrape", "err", err)
			return fail(c, fiber.StatusInternalServerError, "metrics unavailable")
		}
		if err := zw.Close(); err != nil {
			log.Error("metrics scrape", "err", err)
			return fail(c, fiber.StatusInternalServerError, "metrics unavailable")
		}
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Send(zipped.Bytes())
	}
}

// metricsHandler serves the Prometheus metrics; it goes behind requireAuth.
func (d *Dashboard) metricsHandler() fiber.Handler {
	return serveMetrics(newMetricsSet(d.state, d.log), d.log)
}
