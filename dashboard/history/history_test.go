package history

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// merged collects what a History hands to Merge.
type merged struct {
	mu  sync.Mutex
	evs []bus.Event
}

func (m *merged) merge(evs []bus.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, evs...)
}

func (m *merged) reasons() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r []string
	for _, e := range m.evs {
		r = append(r, e.Reason)
	}
	return r
}

// runHistory runs a History on nc until the test ends.
func runHistory(t *testing.T, nc *nats.Conn, m *merged) (*History, <-chan struct{}) {
	t.Helper()
	h := New(nc, Config{Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Merge: m.merge})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, done
}

func event(i int, reason string) bus.Event {
	return bus.Event{Time: time.Unix(1700000000, 0).Add(time.Duration(i) * time.Millisecond), Name: "bot", Type: bus.EventCrashed, PID: 100 + i, Reason: reason}
}

// An event recorded twice (two dashboards receive the same one) is stored
// once and handed back to Merge once, in the stream's own definition.
func TestRecordedEventsAreStoredOnceAndMergedBack(t *testing.T) {
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: t.Name(), StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc := bustest.MustConnect(t, srv)
	m := &merged{}
	h, _ := runHistory(t, nc, m)
	first := bus.Encode(event(1, "first"))
	h.Record("bot", first) // before the stream exists: it waits in the queue
	h.Record("bot", first)
	h.Record("bot", bus.Encode(event(2, "second")))

	deadline := time.Now().Add(20 * time.Second)
	for len(m.reasons()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := m.reasons(); len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Fatalf("merged %v, want [first second]", got)
	}
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages, want 2", info.State.Msgs)
	}
	want := StreamConfig(1)
	if c := info.Config; c.MaxMsgsPerSubject != PerBot || c.MaxMsgSize != MaxMsgBytes || c.Duplicates != want.Duplicates || c.Replicas != 1 {
		t.Errorf("stream config %+v, want %+v", c, want)
	}
}

// On a bus where no stream can be made, Record never blocks: it is called
// from NATS callbacks, and beyond its queue it drops events.
func TestRecordNeverBlocksWithoutAStream(t *testing.T) {
	nc := bustest.MustConnect(t, bustest.NewServer(t)) // no JetStream
	h, _ := runHistory(t, nc, &merged{})
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for i := range 3 * recordQueue {
			h.Record("bot", bus.Encode(event(i, "x")))
		}
	}()
	select {
	case <-recorded:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked")
	}
}
