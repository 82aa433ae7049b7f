package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// syncBuffer is a bytes.Buffer safe for the dashboard's writes and the
// test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testDashboard is a dashboard on loopback with random ports, plus what the
// test needs to look at. A test sets the Config, then calls Open (or Run,
// which opens first); *Dashboard is nil until then.
type testDashboard struct {
	Config
	*Dashboard
	out  *syncBuffer // Config.Out
	logs *syncBuffer // Config.Logger's output
	base string      // http://127.0.0.1:port
}

// newTestDashboard configures (but does not open) a dashboard with a fresh
// data dir and random ports.
func newTestDashboard(t *testing.T) *testDashboard {
	t.Helper()
	out, logs := &syncBuffer{}, &syncBuffer{}
	cfg := Config{
		HTTPAddr:   "127.0.0.1:0",
		NATSListen: "127.0.0.1:0",
		DataDir:    t.TempDir(),
		Version:    "test",
		Logger:     slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Out:        out,
	}
	return &testDashboard{Config: cfg, out: out, logs: logs}
}

// Open opens td's Config.
func (td *testDashboard) Open() error { return td.OpenContext(context.Background()) }

// OpenContext opens td's Config with ctx.
func (td *testDashboard) OpenContext(ctx context.Context) error {
	if td.Dashboard != nil {
		return errors.New("open dashboard: already opened")
	}
	d, err := Open(ctx, td.Config)
	if err != nil {
		return err
	}
	td.Dashboard = d
	return nil
}

// Run opens td unless a test did, then runs it.
func (td *testDashboard) Run(ctx context.Context) error {
	if td.Dashboard == nil {
		if err := td.OpenContext(ctx); err != nil {
			return err
		}
	}
	return td.Dashboard.Run(ctx)
}

// Addr is the bound HTTP address, "" while td is not open: a failed Open
// left nothing bound.
func (td *testDashboard) Addr() string {
	if td.Dashboard == nil {
		return ""
	}
	return td.Dashboard.Addr()
}

// Close closes td if it was opened.
func (td *testDashboard) Close() error {
	if td.Dashboard == nil {
		return nil
	}
	return td.Dashboard.Close()
}

// mustRun opens td (unless the test did, to set what only an opened
// dashboard has) and runs it until the test ends, waits until it serves,
// and returns a stop that checks that Run returned nil; a test may call
// stop early, to restart a dashboard on the same data dir.
func mustRun(t *testing.T, td *testDashboard) (stop func()) {
	t.Helper()
	if td.Dashboard == nil {
		if err := td.Open(); err != nil {
			t.Fatalf("open dashboard: %v", err)
		}
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
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	waitFor(t, "healthz answers", func() bool {
		resp, err := http.Get(td.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return stop
}

// startDashboard is newTestDashboard + mustRun.
func startDashboard(t *testing.T) *testDashboard {
	t.Helper()
	td := newTestDashboard(t)
	mustRun(t, td)
	return td
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connect opens a test client on the dashboard's bus, logged in as an
// agent (which may also be any bot): what fake agents and bots need.
func connect(t *testing.T, td *testDashboard) *nats.Conn {
	t.Helper()
	return connectAs(t, td, bus.LoginAgent)
}

// connectAs opens a test client on the dashboard's bus with one of the
// logins of its bus directory (bus.LoginOperator, ...).
func connectAs(t *testing.T, td *testDashboard, login string) *nats.Conn {
	t.Helper()
	l, err := bus.ResolveLogin(td.NATSURL(), bus.SeedFile(filepath.Join(td.DataDir, "bus"), login), "")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := l.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(td.NATSURL(), opts...)
	if err != nil {
		t.Fatalf("connect to bus as %s: %v", login, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// fakeAgent plays a bot's agent on the real bus: a lifeline-agent micro
// service answering status, restart, stop and start as SPEC says.
type fakeAgent struct {
	name string

	mu       sync.Mutex
	requests []agentRequest
	refuse   bool // answer restart/stop/start with ok:false
}

type agentRequest struct {
	op  string
	req bus.Request
}

func startFakeAgent(t *testing.T, nc *nats.Conn, name string) *fakeAgent {
	t.Helper()
	a := &fakeAgent{name: name}
	svc, err := micro.AddService(nc, micro.Config{
		Name:     bus.AgentService,
		Version:  "0.0.1",
		Metadata: map[string]string{"name": name},
	})
	if err != nil {
		t.Fatalf("add agent service: %v", err)
	}
	t.Cleanup(func() { svc.Stop() })
	for _, op := range []string{bus.OpStatus, bus.OpRestart, bus.OpStop, bus.OpStart} {
		err := svc.AddEndpoint(op, micro.HandlerFunc(func(r micro.Request) { a.handle(op, r) }),
			micro.WithEndpointSubject(bus.AgentSubject(name, op)),
			micro.WithEndpointMetadata(map[string]string{"name": name}))
		if err != nil {
			t.Fatalf("add endpoint %s: %v", op, err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return a
}

func (a *fakeAgent) handle(op string, r micro.Request) {
	req, err := bus.DecodeRequest(r.Data())
	if err != nil {
		r.Respond(bus.Encode(bus.Reply{Error: err.Error()}))
		return
	}
	a.mu.Lock()
	a.requests = append(a.requests, agentRequest{op: op, req: req})
	refuse := a.refuse
	a.mu.Unlock()
	switch {
	case op == bus.OpStatus:
		r.Respond(bus.Encode(bus.Status{
			Name: a.name, State: bus.StateRunning, PID: 101, Host: "test-host", Restarts: 2,
			Agent: bus.AgentInfo{PID: os.Getpid(), Connected: true},
		}))
	case refuse:
		r.Respond(bus.Encode(bus.Reply{Error: "bot is in backoff"}))
	case op == bus.OpRestart:
		r.Respond(bus.Encode(bus.Reply{OK: true, OldPID: 100, NewPID: 101, TookMS: 5}))
	default:
		r.Respond(bus.Encode(bus.Reply{OK: true, PID: 101}))
	}
}

// commands returns the non-status requests the agent received.
func (a *fakeAgent) commands() []agentRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []agentRequest
	for _, r := range a.requests {
		if r.op != bus.OpStatus {
			out = append(out, r)
		}
	}
	return out
}

// response is a finished HTTP exchange.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) errorText(t *testing.T) string {
	t.Helper()
	var e struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	r.json(t, &e)
	if e.OK == nil || *e.OK {
		t.Fatalf("error body %s lacks ok:false", r.body)
	}
	return e.Error
}

// noRedirect returns an HTTP client that shows redirects instead of
// following them.
func noRedirect() *http.Client {
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       40 * time.Second,
	}
}

// call sends a request; hdr holds extra headers ("Authorization": ...).
func call(t *testing.T, method, url string, hdr map[string]string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of %s %s: %v", method, url, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: data}
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	name string
	data string
}

// openStream connects to /api/stream and delivers its events on the
// returned channel, which is closed when the stream ends.
func openStream(t *testing.T, td *testDashboard) <-chan sseEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, td.base+"/api/stream", nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+td.AccessToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("open stream: HTTP %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("stream Content-Type %q", ct)
	}
	ch := make(chan sseEvent, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 16<<20) // a snapshot chunk of a big fleet is one long line
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		<-done
	})
	return ch
}

// nextEvent waits for an event satisfying match, skipping others.
func nextEvent(t *testing.T, ch <-chan sseEvent, what string, match func(sseEvent) bool) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// statusEvent matches a "statuses" event holding the bot's status, in the
// given state unless that is empty.
func statusEvent(name string, state bus.State) func(sseEvent) bool {
	return func(ev sseEvent) bool {
		_, ok := findStatus(ev, name, state)
		return ok
	}
}

// findStatus returns the bot's status from a "statuses" event.
func findStatus(ev sseEvent, name string, state bus.State) (bus.Status, bool) {
	if ev.name != "statuses" {
		return bus.Status{}, false
	}
	var list []bus.Status
	if err := json.Unmarshal([]byte(ev.data), &list); err != nil {
		return bus.Status{}, false
	}
	for _, st := range list {
		if st.Name == name && (state == "" || st.State == state) {
			return st, true
		}
	}
	return bus.Status{}, false
}
