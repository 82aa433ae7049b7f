package dashboard

import (
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/samples"
	"github.com/nats-io/nats.go"
)

// newSampler makes the sampler of the page's charts on nc: every bot the
// state knows, sampled every d.sampleEvery (samples.DefaultInterval when 0).
func (d *Dashboard) newSampler(nc *nats.Conn) *samples.Sampler {
	cfg := samples.Config{
		Log:      d.log,
		Interval: d.sampleEvery,
		Source: func(t time.Time) []samples.Point {
			all := d.state.all()
			out := make([]samples.Point, 0, len(all))
			for _, st := range all {
				out = append(out, samples.FromStatus(st, t))
			}
			return out
		},
	}
	if d.srv != nil {
		cfg.Cluster = d.srv // a nil *bus.Server would be a non-nil Cluster
	}
	return samples.New(nc, cfg)
}

// samplesReply is the body of GET /api/bots/:name/samples.
type samplesReply struct {
	OK      bool             `json:"ok"`
	Samples []samples.Sample `json:"samples"`
	// Note says why there are no samples when the dashboard keeps none.
	Note string `json:"note,omitempty"`
}

// handleSamples answers the kept samples of one bot, oldest first, for the
// page's CPU, memory and heartbeat-age charts.
func (d *Dashboard) handleSamples(c fiber.Ctx) error {
	name := c.Params("name")
	if err := bus.ValidName(name); err != nil {
		return fail(c, fiber.StatusBadRequest, err.Error())
	}
	if !d.state.known(name) {
		return fail(c, fiber.StatusNotFound, fmt.Sprintf("unknown bot %q", name))
	}
	if d.samples == nil {
		return c.JSON(samplesReply{OK: true, Samples: []samples.Sample{}, Note: "this dashboard keeps no samples (--no-history)"})
	}
	smp, err := d.samples.Samples(d.runCtx, name)
	if errors.Is(err, samples.ErrNotReady) {
		return c.JSON(samplesReply{OK: true, Samples: []samples.Sample{}, Note: err.Error()})
	}
	if err != nil {
		return fail(c, fiber.StatusServiceUnavailable, err.Error())
	}
	return c.JSON(samplesReply{OK: true, Samples: smp})
}

// timelineReply is the body of GET /api/bots/:name/timeline.
type timelineReply struct {
	OK     bool        `json:"ok"`
	Since  time.Time   `json:"since"`
	Events []bus.Event `json:"events"`
	Note   string      `json:"note,omitempty"`
}

// handleTimeline answers one bot's lifecycle events of the last 24 hours,
// oldest first, from the event history stream, for the page's restart
// timeline. Without the stream it falls back to the events this dashboard
// holds in memory.
func (d *Dashboard) handleTimeline(c fiber.Ctx) error {
	name := c.Params("name")
	if err := bus.ValidName(name); err != nil {
		return fail(c, fiber.StatusBadRequest, err.Error())
	}
	if !d.state.known(name) {
		return fail(c, fiber.StatusNotFound, fmt.Sprintf("unknown bot %q", name))
	}
	now := time.Now()
	since := now.Add(-samples.TimelineWindow)
	if d.samples != nil {
		evs, err := d.samples.Timeline(d.runCtx, name, now)
		if err == nil {
			return c.JSON(timelineReply{OK: true, Since: since.UTC(), Events: evs})
		}
		d.log.Debug("timeline from memory", "bot", name, "err", err)
	}
	evs := []bus.Event{}
	for _, e := range d.state.recentEvents() { // newest first
		if e.Name == name && e.Time.After(since) {
			evs = append(evs, e)
		}
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return c.JSON(timelineReply{OK: true, Since: since.UTC(), Events: evs, Note: "events this dashboard holds in memory only"})
}
