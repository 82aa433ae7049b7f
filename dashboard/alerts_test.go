package dashboard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// receiver is a real HTTP endpoint standing for a chat service: alerts
// reach it through a generic+http:// URL, and it keeps every message.
type receiver struct {
	addr string
	mu   sync.Mutex
	msgs []string
	srv  *http.Server
}

// newReceiver reserves a loopback port; up starts listening on it.
func newReceiver(t *testing.T) *receiver {
	r := &receiver{addr: freeAddr(t)}
	t.Cleanup(r.down)
	return r
}

func startReceiver(t *testing.T) *receiver {
	r := newReceiver(t)
	r.up(t)
	return r
}

func (r *receiver) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatalf("receiver listen: %v", err)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.msgs = append(r.msgs, string(body))
		r.mu.Unlock()
	})}
	go r.srv.Serve(ln)
}

func (r *receiver) down() {
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
	}
}

// url is the receiver's notification URL; secret is a path part that
// stands for a token and must never show.
func (r *receiver) url(secret string) string { return "generic+http://" + r.addr + "/hook/" + secret }

func (r *receiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

func (r *receiver) count() int { return len(r.messages()) }

// startAlertingDashboard runs a dashboard alerting to url, with a fake
// agent for "bot" on a connection of its own, which it returns.
func startAlertingDashboard(t *testing.T, url string) (*testDashboard, *nats.Conn) {
	t.Helper()
	td := newTestDashboard(t)
	td.Alerts = []string{url}
	td.PublicURL = "https://lifeline.example.com/"
	td.AlertStable = time.Second
	td.AlertRetry = 200 * time.Millisecond
	mustRun(t, td)
	agent := connect(t, td)
	startFakeAgent(t, agent, "bot")
	waitFor(t, "the dashboard to find the agent", func() bool { return td.state.hasAgent("bot") })
	return td, agent
}

// alertQueueEmpty reports whether every queued alert was sent and acked.
func alertQueueEmpty(t *testing.T, td *testDashboard) bool {
	js, err := jetstream.New(connectAdmin(t, td))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, AlertStreamName, alertConsumer)
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
}

func alertsInfo(t *testing.T, td *testDashboard) AlertsInfo {
	t.Helper()
	r := call(t, "GET", td.base+"/api/alerts", bearer(td.AccessToken()), nil)
	var info AlertsInfo
	if r.code != 200 {
		t.Fatalf("GET /api/alerts: %d %s", r.code, r.body)
	}
	r.json(t, &info)
	return info
}

// waitMessages waits for n messages, then for the queue to be empty, and
// checks that no more came: exactly n.
func waitMessages(t *testing.T, td *testDashboard, r *receiver, n int) []string {
	t.Helper()
	waitLong(t, "alert messages", func() bool { return r.count() >= n })
	waitFor(t, "the alert queue to empty", func() bool { return alertQueueEmpty(t, td) })
	if got := r.messages(); len(got) != n {
		t.Fatalf("receiver got %d messages, want %d: %q", len(got), n, got)
	}
	return r.messages()
}

func TestAlertOnKillSaysWhatHappenedAndRecovers(t *testing.T) {
	r := startReceiver(t)
	td, agent := startAlertingDashboard(t, r.url("s3cret-token"))
	publishEvent(t, agent, bus.Event{Time: time.Now().UTC(), Name: "bot", Type: bus.EventCrashed, PID: 100, Reason: "signal: killed"})
	msgs := waitMessages(t, td, r, 1)
	for _, want := range []string{"bot", "test-host", "crashed", "signal: killed", "https://lifeline.example.com/#bot=bot"} {
		if !strings.Contains(msgs[0], want) {
			t.Errorf("alert %q lacks %q", msgs[0], want)
		}
	}
	msgs = waitMessages(t, td, r, 2)
	if !strings.Contains(msgs[1], "running again") {
		t.Errorf("recovery %q lacks \"running again\"", msgs[1])
	}
	if strings.Contains(td.logs.String(), "s3cret-token") {
		t.Error("the logs hold the alert URL's secret")
	}
}

func TestAlertHangIsOneAlertAndOneRecovery(t *testing.T) {
	r := startReceiver(t)
	td, agent := startAlertingDashboard(t, r.url("x"))
	now := time.Now().UTC()
	publishEvent(t, agent, bus.Event{Time: now, Name: "bot", Type: bus.EventHung, PID: 100, Reason: "no heartbeat for 5s"})
	publishEvent(t, agent, bus.Event{Time: now.Add(time.Millisecond), Name: "bot", Type: bus.EventKilled, PID: 100, Reason: "hung: no heartbeat"})
	publishEvent(t, agent, bus.Event{Time: now.Add(2 * time.Millisecond), Name: "bot", Type: bus.EventStarted, PID: 101})
	msgs := waitMessages(t, td, r, 2)
	if !strings.Contains(msgs[0], "hung") || !strings.Contains(msgs[1], "running again") {
		t.Errorf("messages %q: want a hang, then a recovery", msgs)
	}
}

func TestAlertCrashLoopIsOneAlertAndOneRecovery(t *testing.T) {
	r := startReceiver(t)
	td, agent := startAlertingDashboard(t, r.url("x"))
	now := time.Now().UTC()
	for i := range 5 {
		at := now.Add(time.Duration(i) * 10 * time.Millisecond)
		publishEvent(t, agent, bus.Event{Time: at, Name: "bot", Type: bus.EventCrashed, PID: 100 + i, Reason: "exit code 1"})
		publishEvent(t, agent, bus.Event{Time: at.Add(time.Millisecond), Name: "bot", Type: bus.EventBackoff, Reason: "next start in 1s"})
	}
	msgs := waitMessages(t, td, r, 2)
	if !strings.Contains(msgs[0], "crashed") || !strings.Contains(msgs[1], "running again") {
		t.Errorf("messages %q: want one crash, then one recovery", msgs)
	}
}

func TestAlertAgentLostAndBack(t *testing.T) {
	r := startReceiver(t)
	td, agent := startAlertingDashboard(t, r.url("x"))
	agent.Close() // the agent is gone: the bus says nobody answers
	msgs := waitMessages(t, td, r, 1)
	if !strings.Contains(msgs[0], "lost its agent") {
		t.Errorf("alert %q lacks \"lost its agent\"", msgs[0])
	}
	startFakeAgent(t, connect(t, td), "bot")
	msgs = waitMessages(t, td, r, 2)
	if !strings.Contains(msgs[1], "running again") {
		t.Errorf("recovery %q lacks \"running again\"", msgs[1])
	}
}

func TestAlertReceiverDownThenBack(t *testing.T) {
	r := newReceiver(t) // not listening yet
	td, agent := startAlertingDashboard(t, r.url("s3cret-token"))
	publishEvent(t, agent, bus.Event{Time: time.Now().UTC(), Name: "bot", Type: bus.EventCrashed, PID: 100, Reason: "exit code 2"})
	waitLong(t, "two failed deliveries on /api/alerts", func() bool {
		info := alertsInfo(t, td)
		return info.Failing && len(info.Failures) >= 2
	})
	body := call(t, "GET", td.base+"/api/alerts", bearer(td.AccessToken()), nil).body
	if strings.Contains(string(body), "s3cret-token") || strings.Contains(td.logs.String(), "s3cret-token") {
		t.Errorf("the URL's secret shows: %s", body)
	}
	if !strings.Contains(td.logs.String(), "alert not delivered") {
		t.Error("the failure is not logged")
	}
	r.up(t)
	waitLong(t, "the alert delivered once the receiver is back", func() bool { return r.count() >= 1 })
	// The receiver counts the message before the dashboard has its answer.
	waitLong(t, "/api/alerts to say the alert was sent and nothing is failing", func() bool {
		info := alertsInfo(t, td)
		return !info.Failing && info.Sent >= 1
	})
	if !strings.Contains(r.messages()[0], "exit code 2") {
		t.Errorf("delivered %q, want the crash", r.messages()[0])
	}
}

func TestAlertTwoDashboardsOnOneBusSendOnce(t *testing.T) {
	r := startReceiver(t)
	first, agent := startAlertingDashboard(t, r.url("x"))
	second := newTestDashboard(t)
	second.ExternalNATS = strings.Replace(first.NATSURL(), "nats://", "nats://"+first.admin.Name+":"+first.admin.Password+"@", 1)
	second.Alerts, second.AlertStable, second.AlertRetry = first.Alerts, time.Second, 200*time.Millisecond
	mustRun(t, second)
	waitFor(t, "the second dashboard to find the agent", func() bool { return second.state.hasAgent("bot") })
	publishEvent(t, agent, bus.Event{Time: time.Now().UTC(), Name: "bot", Type: bus.EventCrashed, PID: 100, Reason: "exit code 1"})
	waitMessages(t, first, r, 2) // the crash and the recovery, once each
	// Both queued the crash: the queue, not luck, made it one.
	for _, td := range []*testDashboard{first, second} {
		if n := crashesQueued(td); n != 1 {
			t.Errorf("a dashboard queued the crash %d times, want 1", n)
		}
	}
}

// crashesQueued counts the alerts (not recoveries) td queued.
func crashesQueued(td *testDashboard) int {
	n := 0
	for line := range strings.Lines(td.logs.String()) {
		if strings.Contains(line, "alert due") && strings.Contains(line, "kind=alert ") {
			n++
		}
	}
	return n
}

func TestSendTestAlert(t *testing.T) {
	r := startReceiver(t)
	if err := SendTestAlert([]string{r.url("x")}, "host-1", "https://p.example.com"); err != nil {
		t.Fatal(err)
	}
	if msgs := r.messages(); len(msgs) != 1 || !strings.Contains(msgs[0], "test message") || !strings.Contains(msgs[0], "host-1") {
		t.Errorf("receiver got %q", msgs)
	}
	down := newReceiver(t)
	err := SendTestAlert([]string{r.url("x"), down.url("s3cret-token")}, "host-1", "")
	if err == nil || !strings.Contains(err.Error(), "#2") || strings.Contains(err.Error(), "s3cret-token") {
		t.Errorf("a down receiver gives %v, want an error naming #2 without its secret", err)
	}
	if err := SendTestAlert([]string{"nosuchservice://a/b"}, "h", ""); !errors.Is(err, ErrAlertURL) {
		t.Errorf("an unknown service gives %v, want ErrAlertURL", err)
	}
	if err := (Config{Alerts: []string{"nosuchservice://secret-part"}}).Validate(); !errors.Is(err, ErrAlertURL) || strings.Contains(err.Error(), "secret-part") {
		t.Errorf("Validate of a bad alert URL gives %v", err)
	}
}

// TestAlertTwoClusteredDashboardsSendOnce: two dashboards of one cluster
// both see a crash loop and both queue its alert and recovery; the
// receiver gets each once.
func TestAlertTwoClusteredDashboardsSendOnce(t *testing.T) {
	r := startReceiver(t)
	var listens, routes []string
	for range 2 {
		addr := freeAddr(t)
		listens = append(listens, addr)
		routes = append(routes, "nats://"+addr)
	}
	logins := sharedBusDir(t)
	var ds []*testDashboard
	for i := range 2 {
		td := newTestDashboard(t)
		bustest.CopyBusDir(t, logins, td.DataDir)
		td.ClusterListen, td.ClusterName, td.Routes = listens[i], "t", routes
		td.Alerts, td.AlertStable, td.AlertRetry = []string{r.url("x")}, time.Second, 200*time.Millisecond
		mustRun(t, td)
		ds = append(ds, td)
	}
	agent := connect(t, ds[0])
	startFakeAgent(t, agent, "bot")
	js, err := jetstream.New(connectAdmin(t, ds[1]))
	if err != nil {
		t.Fatal(err)
	}
	// A JetStream cluster takes a few seconds to elect its leaders.
	waitLong(t, "the alert queue", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.Consumer(ctx, AlertStreamName, alertConsumer)
		return err == nil
	})
	for _, td := range ds {
		waitLong(t, "every dashboard to find the agent", func() bool { return td.state.hasAgent("bot") })
	}
	now := time.Now().UTC()
	for i := range 3 {
		publishEvent(t, agent, bus.Event{Time: now.Add(time.Duration(i) * time.Millisecond), Name: "bot", Type: bus.EventCrashed, PID: 100 + i, Reason: "exit code 3"})
	}
	msgs := waitMessages(t, ds[0], r, 2)
	if !strings.Contains(msgs[0], "exit code 3") || !strings.Contains(msgs[1], "running again") {
		t.Errorf("messages %q: want one crash, then one recovery", msgs)
	}
	// Both sent it to the queue: the queue, not luck, made it one.
	for _, td := range ds {
		if n := crashesQueued(td); n != 1 {
			t.Errorf("a dashboard queued the crash %d times, want 1", n)
		}
	}
}
