package dashboard

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitLong is waitFor for what a JetStream cluster does at its own pace.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runUntil runs td until the returned stop function is called.
func runUntil(t *testing.T, td *testDashboard) (stop func()) {
	t.Helper()
	if err := td.Open(); err != nil {
		t.Fatalf("open dashboard: %v", err)
	}
	td.base = "http://" + td.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- td.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func publishEvent(t *testing.T, nc *nats.Conn, ev bus.Event) {
	t.Helper()
	if err := nc.Publish(bus.EventsSubject(ev.Name), bus.Encode(ev)); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
}

func hasEvent(t *testing.T, td *testDashboard, reason string) bool {
	r := call(t, "GET", td.base+"/api/events", bearer(td.AccessToken()), nil)
	return r.code == 200 && strings.Contains(string(r.body), reason)
}

func TestHistorySurvivesADashboardRestart(t *testing.T) {
	first := newTestDashboard(t)
	stop := runUntil(t, first)
	nc := connect(t, first)
	waitFor(t, "events stream", func() bool {
		js, _ := jetstream.New(nc)
		_, err := js.Stream(context.Background(), eventsStream)
		return err == nil
	})
	publishEvent(t, nc, bus.Event{Time: time.Now().UTC(), Name: "bot", Type: bus.EventCrashed, PID: 42, Reason: "before-restart"})
	waitFor(t, "event seen live", func() bool { return hasEvent(t, first, "before-restart") })
	nc.Close()
	stop()

	second := newTestDashboard(t)
	second.DataDir = first.DataDir
	runUntil(t, second)
	waitFor(t, "event from history", func() bool { return hasEvent(t, second, "before-restart") })
	// The bot's own history route returns it too, and only its events.
	r := call(t, "GET", second.base+"/api/bots/bot/events", bearer(second.AccessToken()), nil)
	if r.code != 200 || !strings.Contains(string(r.body), "before-restart") {
		t.Fatalf("GET /api/bots/bot/events: %d %s", r.code, r.body)
	}
	if r := call(t, "GET", second.base+"/api/bots/nobody/events", bearer(second.AccessToken()), nil); r.code != 404 {
		t.Fatalf("unknown bot's events: %d", r.code)
	}
}

func TestHistoryIsSharedAcrossAClusterAndReplicated(t *testing.T) {
	// As operators do: every dashboard is given every cluster address.
	var listens, routes []string
	for range 3 {
		addr := freeAddr(t)
		listens = append(listens, addr)
		routes = append(routes, "nats://"+addr)
	}
	var ds []*testDashboard
	for i := range 3 {
		td := newTestDashboard(t)
		td.ClusterListen, td.ClusterName, td.Routes = listens[i], "t", routes
		runUntil(t, td)
		ds = append(ds, td)
	}
	nc := connect(t, ds[0])
	js, _ := jetstream.New(nc)
	// A JetStream cluster takes a few seconds to elect its leaders.
	waitLong(t, "events stream with 3 replicas", func() bool {
		s, err := js.Stream(context.Background(), eventsStream)
		return err == nil && s.CachedInfo().Config.Replicas == 3
	})
	publishEvent(t, nc, bus.Event{Time: time.Now().UTC(), Name: "bot", Type: bus.EventRestarted, PID: 7, Reason: "clustered-history", RequestedBy: "test"})
	for _, td := range ds {
		waitFor(t, "event on every dashboard", func() bool { return hasEvent(t, td, "clustered-history") })
	}
	// A fourth dashboard, started later, shows the earlier event at once.
	late := newTestDashboard(t)
	late.ClusterListen, late.ClusterName, late.Routes = freeAddr(t), "t", routes
	runUntil(t, late)
	waitLong(t, "history on a late dashboard", func() bool { return hasEvent(t, late, "clustered-history") })
}
