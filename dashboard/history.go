package dashboard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The lifecycle events of every bot are kept in a JetStream stream, so that
// every dashboard, including one started later, shows the same history.
const (
	eventsStream   = "LIFELINE_EVENTS"
	historyMaxAge  = 7 * 24 * time.Hour
	historyMaxSize = 64 << 20
	// historyReplay is how many of the newest kept events a dashboard
	// reads when it starts.
	historyReplay = 1000
)

// eventsStreamConfig is the stream's definition; replicas is 3 on a cluster
// of three or more servers, else 1.
func eventsStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        eventsStream,
		Description: "lifeline lifecycle events of every bot",
		Subjects:    []string{bus.EventsWildcard},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      historyMaxAge,
		MaxBytes:    historyMaxSize,
		Replicas:    replicas,
	}
}

// keepHistory makes sure the events stream exists, then loads its newest
// events into the dashboard's state. JetStream may need a few seconds after
// a cluster forms, so it retries until ctx ends; without JetStream (an
// existing NATS without it) the dashboard simply shows live events only.
func (d *Dashboard) keepHistory(ctx context.Context, nc *nats.Conn) {
	js, err := jetstream.New(nc)
	if err != nil {
		d.log.Warn("no event history", "err", err)
		return
	}
	for {
		err := d.loadHistory(ctx, js)
		if err == nil {
			d.replicateHistory(ctx, js)
			return
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			d.log.Info("the bus has no JetStream; event history is kept in memory only")
			return
		}
		d.log.Debug("event history not ready", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// loadHistory ensures the stream, replicates it once the cluster allows, and
// merges its newest events into the state.
func (d *Dashboard) loadHistory(ctx context.Context, js jetstream.JetStream) error {
	stream, err := ensureStream(ctx, js, d.replicas())
	if err != nil {
		return err
	}
	evs, err := replay(ctx, stream)
	if err != nil {
		return fmt.Errorf("read event history: %w", err)
	}
	d.state.history(evs)
	return nil
}

// replicateHistory raises the stream to three replicas once this clustered
// bus has three servers: a stream made while the cluster was still forming
// starts with one.
func (d *Dashboard) replicateHistory(ctx context.Context, js jetstream.JetStream) {
	if d.srv == nil || !d.srv.JetStreamIsClustered() {
		return
	}
	for {
		if d.replicas() == 3 {
			s, err := js.Stream(ctx, eventsStream)
			if err == nil {
				cfg := s.CachedInfo().Config
				if cfg.Replicas >= 3 {
					return
				}
				cfg.Replicas = 3
				if _, err := js.UpdateStream(ctx, cfg); err == nil {
					d.log.Info("event history replicated", "replicas", 3)
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
func (d *Dashboard) replicas() int {
	if d.srv != nil && d.srv.JetStreamIsClustered() && len(d.srv.JetStreamClusterPeers()) >= 3 {
		return 3
	}
	return 1
}

func ensureStream(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(rctx, eventsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Another dashboard may create it at the same moment; both
		// definitions are the same, so either wins.
		s, err = js.CreateStream(rctx, eventsStreamConfig(replicas))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(rctx, eventsStream)
		}
	}
	return s, err
}

// replay reads the newest historyReplay events of the stream.
func replay(ctx context.Context, stream jetstream.Stream) ([]bus.Event, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := stream.Info(rctx)
	if err != nil {
		return nil, err
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil, nil
	}
	first := info.State.FirstSeq
	if last >= historyReplay && last-historyReplay+1 > first {
		first = last - historyReplay + 1
	}
	cons, err := stream.OrderedConsumer(rctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   first,
	})
	if err != nil {
		return nil, err
	}
	// Ask for exactly what is there and read each batch to its end, so no
	// fetch is left waiting behind us.
	var evs []bus.Event
	for seq := first; seq <= last; {
		batch, err := cons.Fetch(int(last-seq+1), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return evs, err
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if meta, err := msg.Metadata(); err == nil {
				seq = meta.Sequence.Stream + 1
			}
			if ev, err := bus.DecodeEvent(msg.Data()); err == nil {
				evs = append(evs, ev)
			}
		}
		if n == 0 {
			if err := batch.Error(); err != nil {
				return evs, err
			}
			return evs, errors.New("history ended early")
		}
	}
	return evs, nil
}
