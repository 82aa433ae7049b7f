package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

func sleeper(dir, name string) Agent {
	return Agent{
		Name:          name,
		PIDFile:       filepath.Join(dir, name+".pid"),
		LogFile:       filepath.Join(dir, name+".log"),
		Command:       []string{"sleep", "1000"},
		StopTimeout:   2 * time.Second,
		StopBotOnExit: true,
		Logger:        slog.New(slog.DiscardHandler),
	}
}

// discovered asks every lifeline-agent service for verb and returns the
// bot names of the answers, sorted.
func discovered(t *testing.T, nc *nats.Conn, verb micro.Verb) []string {
	t.Helper()
	subject, err := micro.ControlSubject(verb, bus.AgentService, "")
	if err != nil {
		t.Fatal(err)
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		msg, err := sub.NextMsg(300 * time.Millisecond)
		if err != nil {
			break
		}
		var info micro.Info
		if err := json.Unmarshal(msg.Data, &info); err != nil {
			t.Fatal(err)
		}
		if info.Name != bus.AgentService {
			t.Errorf("service name %q", info.Name)
		}
		// status, restart, stop, start, logs, logs-follow
		if verb == micro.InfoVerb && len(info.Endpoints) != 6 {
			t.Errorf("bot %s: %d endpoints, want 6", info.Metadata["name"], len(info.Endpoints))
		}
		names = append(names, info.Metadata["name"])
	}
	slices.Sort(names)
	return names
}

func fleetStatus(t *testing.T, nc *nats.Conn, name string) (bus.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return bus.AskStatus(ctx, nc, name)
}

func fleetRunning(t *testing.T, nc *nats.Conn, name string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := fleetStatus(t, nc, name); err == nil && st.State == bus.StateRunning && st.PID > 0 {
			return st.PID
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("bot %s not running", name)
	return 0
}

// A fleet's bots are each their own service on the bus, found by
// discovery as lone agents are, and Reload changes only what changed.
func TestFleetServicesAndReload(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	dir := t.TempDir()
	f := &Fleet{NATSURL: srv.ClientURL(), Logger: slog.New(slog.DiscardHandler),
		Bots: []Agent{sleeper(dir, "a"), sleeper(dir, "b"), sleeper(dir, "c")}}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-errc
	})
	pids := map[string]int{}
	for _, n := range []string{"a", "b", "c"} {
		pids[n] = fleetRunning(t, nc, n)
	}
	for _, verb := range []micro.Verb{micro.PingVerb, micro.InfoVerb, micro.StatsVerb} {
		if got := discovered(t, nc, verb); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Errorf("%s answered for %v, want a, b, c", verb, got)
		}
	}

	// A bad set changes nothing.
	bad := []Agent{sleeper(dir, "a"), sleeper(dir, "d")}
	bad[1].PIDFile = bad[0].PIDFile
	if err := f.Reload(bad); !errors.Is(err, ErrDuplicatePIDFile) {
		t.Fatalf("Reload of a bad set = %v", err)
	}
	if got := f.Names(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("after a refused reload the bots are %v", got)
	}

	// a unchanged, b changed, c removed, d added.
	b := sleeper(dir, "b")
	b.Env = []string{"MODE=live"}
	if err := f.Reload([]Agent{sleeper(dir, "a"), b, sleeper(dir, "d")}); err != nil {
		t.Fatal(err)
	}
	if got := fleetRunning(t, nc, "a"); got != pids["a"] {
		t.Errorf("unchanged bot a: pid %d, want %d", got, pids["a"])
	}
	if got := fleetRunning(t, nc, "b"); got == pids["b"] {
		t.Error("changed bot b kept its process")
	}
	fleetRunning(t, nc, "d")
	if exists(pids["c"]) {
		t.Error("removed bot c still runs")
	}
	if _, err := fleetStatus(t, nc, "c"); err == nil {
		t.Error("removed bot c still answers")
	}
	if got := discovered(t, nc, micro.InfoVerb); !slices.Equal(got, []string{"a", "b", "d"}) {
		t.Errorf("INFO answered for %v, want a, b, d", got)
	}

	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v", err)
	}
	errc <- nil
	if exists(pids["a"]) {
		t.Error("bot a outlived its agent despite StopBotOnExit")
	}
}

// Two fleets cannot claim the same bot: the second is refused, naming
// every bot it shares, and starts none of its own.
func TestFleetSecondRefused(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	dir := t.TempDir()
	first := &Fleet{NATSURL: srv.ClientURL(), Logger: slog.New(slog.DiscardHandler),
		Bots: []Agent{sleeper(dir, "a"), sleeper(dir, "b")}}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- first.Run(ctx) }()
	defer func() {
		cancel()
		<-errc
	}()
	pa := fleetRunning(t, nc, "a")
	second := &Fleet{NATSURL: srv.ClientURL(), Logger: slog.New(slog.DiscardHandler),
		Bots: []Agent{sleeper(dir, "x"), sleeper(dir, "a"), sleeper(dir, "b")}}
	err := second.Run(context.Background())
	if !errors.Is(err, ErrAnotherAgent) {
		t.Fatalf("second fleet: %v", err)
	}
	for _, want := range []string{`"a"`, `"b"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %s", err, want)
		}
	}
	if _, err := fleetStatus(t, nc, "x"); err == nil {
		t.Error("the refused fleet started bot x")
	}
	if got := fleetRunning(t, nc, "a"); got != pa {
		t.Errorf("bot a: pid %d, want %d", got, pa)
	}
}
