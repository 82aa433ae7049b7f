package bot

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every wait for a condition; generous because -race is slow.
const wait = 10 * time.Second

// countWorker counts its Steps; it always waits for the next poll.
type countWorker struct{ steps int64 }

func (w *countWorker) Step(context.Context) (bool, error) { w.steps++; return false, nil }
func (w *countWorker) Stats() map[string]int64            { return map[string]int64{"steps": w.steps} }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newBot returns a bot named "tbot" with its PID file in a fresh directory.
func newBot(t *testing.T, url string, w Worker) *Bot {
	t.Helper()
	return &Bot{
		Name:      "tbot",
		NATSURL:   url,
		PIDFile:   filepath.Join(t.TempDir(), "run", "bot.pid"),
		Heartbeat: 20 * time.Millisecond,
		Poll:      time.Millisecond,
		Version:   "v1.2.3",
		Logger:    testLogger(t),
		Worker:    w,
	}
}

// runBot runs b in the background. The returned channel yields Run's
// result; cancel stops the bot. When the test ends the bot is stopped and
// waited for.
func runBot(t *testing.T, b *Bot) (done <-chan error, cancel context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		errc <- b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(wait):
			t.Errorf("Run did not return after cancel")
		}
	})
	return errc, cancel
}

// mustReturn waits for Run's result and fails unless it is nil.
func mustReturn(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
}

func subscribe(t *testing.T, nc *nats.Conn, subject string) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	// The subscription is in place on the server once Flush returns.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

func nextHeartbeat(t *testing.T, sub *nats.Subscription) bus.Heartbeat {
	t.Helper()
	msg, err := sub.NextMsg(wait)
	if err != nil {
		t.Fatalf("wait for heartbeat: %v", err)
	}
	hb, err := bus.DecodeHeartbeat(msg.Data)
	if err != nil {
		t.Fatalf("decode heartbeat %s: %v", msg.Data, err)
	}
	return hb
}

func request(t *testing.T, nc *nats.Conn, subject string, body []byte) *nats.Msg {
	t.Helper()
	msg, err := nc.Request(subject, body, wait)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return msg
}

func assertNoPIDFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file %s after clean exit: stat err = %v, want not exist", path, err)
	}
}

// closedURL returns a bus URL on which nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "nats://" + addr
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestFirstHeartbeatAtOnce(t *testing.T) {
	s := bustest.NewServer(t)
	nc := bustest.MustConnect(t, s)
	sub := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	b := newBot(t, s.ClientURL(), &countWorker{})
	// With an hour between ticks, only the start-up heartbeat can arrive.
	b.Heartbeat = time.Hour
	done, cancel := runBot(t, b)

	hb := nextHeartbeat(t, sub)
	host, _ := os.Hostname()
	if hb.Name != "tbot" || hb.PID != os.Getpid() || hb.Host != host || hb.Seq != 1 || hb.Version != "v1.2.3" {
		t.Errorf("first heartbeat = %+v, want name tbot, pid %d, host %s, seq 1, version v1.2.3", hb, os.Getpid(), host)
	}
	if hb.StartedAt.IsZero() || hb.Time.Before(hb.StartedAt) {
		t.Errorf("heartbeat time %v, started_at %v", hb.Time, hb.StartedAt)
	}
	if _, ok := hb.Stats["steps"]; !ok {
		t.Errorf("heartbeat stats %v lack the worker's counters", hb.Stats)
	}
	if pid, err := pidfile.Read(b.PIDFile); err != nil || pid != os.Getpid() {
		t.Errorf("pidfile.Read = %d, %v; want %d", pid, err, os.Getpid())
	}

	cancel()
	mustReturn(t, done)
	assertNoPIDFile(t, b.PIDFile)
}

func TestHeartbeatsCarryProgress(t *testing.T) {
	s := bustest.NewServer(t)
	nc := bustest.MustConnect(t, s)
	sub := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	runBot(t, newBot(t, s.ClientURL(), &countWorker{}))

	first := nextHeartbeat(t, sub)
	prev := first
	for range 5 {
		hb := nextHeartbeat(t, sub)
		if hb.Seq <= prev.Seq {
			t.Fatalf("seq went from %d to %d", prev.Seq, hb.Seq)
		}
		if hb.StartedAt != first.StartedAt || hb.PID != first.PID {
			t.Errorf("heartbeat %d: started_at %v pid %d, first had %v %d", hb.Seq, hb.StartedAt, hb.PID, first.StartedAt, first.PID)
		}
		if hb.Stats["steps"] < prev.Stats["steps"] {
			t.Errorf("steps went down from %d to %d", prev.Stats["steps"], hb.Stats["steps"])
		}
		prev = hb
	}
}

func TestShutdownRequest(t *testing.T) {
	s := bustest.NewServer(t)
	nc := bustest.MustConnect(t, s)
	sub := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	b := newBot(t, s.ClientURL(), &countWorker{})
	done, _ := runBot(t, b)
	// The service is registered before the first heartbeat goes out.
	nextHeartbeat(t, sub)

	var info micro.Info
	if err := json.Unmarshal(request(t, nc, "$SRV.INFO."+bus.BotService, nil).Data, &info); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	want := map[string]string{"name": "tbot", "pid": strconv.Itoa(os.Getpid()), "host": host}
	for k, v := range want {
		if info.Metadata[k] != v {
			t.Errorf("service metadata %s = %q, want %q", k, info.Metadata[k], v)
		}
	}
	if info.Version != "1.2.3" || len(info.Endpoints) != 1 || info.Endpoints[0].Subject != bus.ShutdownSubject("tbot") {
		t.Errorf("service info = %+v", info)
	}

	msg := request(t, nc, bus.ShutdownSubject("tbot"), []byte(`{"requested_by":"test"}`))
	r, err := bus.DecodeReply(msg.Data)
	if err != nil || !r.OK || r.PID != os.Getpid() {
		t.Fatalf("shutdown reply %s (%v), want ok with pid %d", msg.Data, err, os.Getpid())
	}
	mustReturn(t, done)
	assertNoPIDFile(t, b.PIDFile)
}

func TestShutdownRefusesGarbage(t *testing.T) {
	s := bustest.NewServer(t)
	nc := bustest.MustConnect(t, s)
	sub := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	b := newBot(t, s.ClientURL(), &countWorker{})
	done, _ := runBot(t, b)
	nextHeartbeat(t, sub)

	for _, body := range []string{
		"garbage",
		"[]",
		`{"unknown":1}`,
		`{"requested_by":"x"} trailing`,
		`{"requested_by":"` + strings.Repeat("x", bus.MaxRequestBytes) + `"}`,
	} {
		msg := request(t, nc, bus.ShutdownSubject("tbot"), []byte(body))
		r, err := bus.DecodeReply(msg.Data)
		if err != nil || r.OK || r.Error == "" || msg.Header.Get(micro.ErrorCodeHeader) != "400" {
			t.Errorf("reply to %.20q: %s, header %v (%v); want a 400 error reply", body, msg.Data, msg.Header, err)
		}
	}

	select {
	case err := <-done:
		t.Fatalf("Run returned %v after garbage requests", err)
	default:
	}
	// A subscription made now only sees heartbeats sent after the garbage.
	after := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	first := nextHeartbeat(t, after)
	if next := nextHeartbeat(t, after); next.Seq <= first.Seq {
		t.Errorf("seq went from %d to %d", first.Seq, next.Seq)
	}

	// An empty body, what `nats req SUBJECT ''` sends, is a valid request.
	msg := request(t, nc, bus.ShutdownSubject("tbot"), nil)
	if r, err := bus.DecodeReply(msg.Data); err != nil || !r.OK {
		t.Fatalf("reply to empty body: %s (%v)", msg.Data, err)
	}
	mustReturn(t, done)
	assertNoPIDFile(t, b.PIDFile)
}

func TestSecondBotRefused(t *testing.T) {
	s := bustest.NewServer(t)
	nc := bustest.MustConnect(t, s)
	sub := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	first := newBot(t, s.ClientURL(), &countWorker{})
	runBot(t, first)
	nextHeartbeat(t, sub)

	second := newBot(t, s.ClientURL(), &countWorker{})
	second.PIDFile = first.PIDFile
	err := second.Run(t.Context())
	var locked *pidfile.LockedError
	if !errors.As(err, &locked) || locked.PID != os.Getpid() {
		t.Fatalf("second Run = %v, want a LockedError naming pid %d", err, os.Getpid())
	}
	if !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Errorf("error %q does not name the pid", err)
	}
	// The refused bot must leave the first one's PID file alone.
	if pid, err := pidfile.Read(first.PIDFile); err != nil || pid != os.Getpid() {
		t.Errorf("pidfile.Read = %d, %v after the refusal", pid, err)
	}
}

func TestBadNameRefused(t *testing.T) {
	for _, name := range []string{"", "a.b", "a b", "x>", strings.Repeat("a", 65)} {
		b := newBot(t, closedURL(t), &countWorker{})
		b.Name = name
		if err := b.Run(t.Context()); !errors.Is(err, bus.ErrBadName) {
			t.Errorf("Run with name %q = %v, want ErrBadName", name, err)
		}
		if _, err := os.Stat(b.PIDFile); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("name %q: pid file created before the name was checked", name)
		}
	}
}

// hangWorker's Step hangs for good once three heartbeats have gone out, the
// way a deadlocked bot does, until release is closed.
type hangWorker struct {
	beats    uint64 // heartbeats so far: Stats runs once per heartbeat
	atHang   uint64 // beats when Step hung
	hanged   bool
	hung     chan struct{}
	release  chan struct{}
	finished chan struct{}
}

func (w *hangWorker) Step(context.Context) (bool, error) {
	if w.hanged || w.beats < 3 {
		return false, nil
	}
	w.hanged, w.atHang = true, w.beats
	close(w.hung)
	<-w.release
	close(w.finished)
	return false, nil
}

func (w *hangWorker) Stats() map[string]int64 { w.beats++; return nil }

func newHangWorker() *hangWorker {
	return &hangWorker{hung: make(chan struct{}), release: make(chan struct{}), finished: make(chan struct{})}
}

func (w *hangWorker) waitHung(t *testing.T) {
	t.Helper()
	select {
	case <-w.hung:
	case <-time.After(wait):
		t.Fatal("worker never hung")
	}
}

// releaseOnCleanup releases a Step still hanging when the test ends, before
// runBot's cleanup waits for Run; call it after runBot.
func (w *hangWorker) releaseOnCleanup(t *testing.T) {
	t.Cleanup(func() {
		select {
		case <-w.release:
		default:
			close(w.release)
		}
	})
}

func TestHungStepStopsHeartbeats(t *testing.T) {
	s := bustest.NewServer(t)
	nc := bustest.MustConnect(t, s)
	sub := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	w := newHangWorker()
	b := newBot(t, s.ClientURL(), w)
	done, _ := runBot(t, b)
	w.releaseOnCleanup(t)
	w.waitHung(t)
	// Every heartbeat still arriving must have been sent before the Step
	// hung, and then none may come for ten intervals.
	for {
		msg, err := sub.NextMsg(10 * b.Heartbeat)
		if errors.Is(err, nats.ErrTimeout) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hb, _ := bus.DecodeHeartbeat(msg.Data); hb.Seq > w.atHang {
			t.Fatalf("heartbeat %d sent while Step hung after heartbeat %d", hb.Seq, w.atHang)
		}
	}

	// The rest of the bot is alive: it still answers, and stops once the
	// Step in hand returns, without starting another.
	msg := request(t, nc, bus.ShutdownSubject("tbot"), nil)
	if r, err := bus.DecodeReply(msg.Data); err != nil || !r.OK {
		t.Fatalf("shutdown reply %s (%v)", msg.Data, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while a Step was in hand", err)
	default:
	}
	close(w.release)
	mustReturn(t, done)
	<-w.finished
	assertNoPIDFile(t, b.PIDFile)
}

func TestCancelFinishesStepInHand(t *testing.T) {
	s := bustest.NewServer(t)
	w := newHangWorker()
	b := newBot(t, s.ClientURL(), w)
	done, cancel := runBot(t, b)
	w.releaseOnCleanup(t)
	w.waitHung(t)
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before the Step in hand finished", err)
	default:
	}
	close(w.release)
	mustReturn(t, done)
	select {
	case <-w.finished:
	default:
		t.Error("Run returned before the Step in hand finished")
	}
	assertNoPIDFile(t, b.PIDFile)
}

func TestWorksWithoutBus(t *testing.T) {
	dir := t.TempDir()
	d := &Demo{Inbox: filepath.Join(dir, "inbox"), Outbox: filepath.Join(dir, "outbox"), Logger: testLogger(t)}
	if err := os.MkdirAll(d.Inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		writeFile(t, filepath.Join(d.Inbox, "item"+strconv.Itoa(i)), "some words\n")
	}
	b := newBot(t, closedURL(t), d)
	done, cancel := runBot(t, b)

	waitFor(t, "inbox to drain", func() bool {
		in, _ := os.ReadDir(d.Inbox)
		out, _ := os.ReadDir(d.Outbox)
		return len(in) == 0 && len(out) == 5
	})
	cancel()
	mustReturn(t, done)
	assertNoPIDFile(t, b.PIDFile)
}

func TestBusComesUpLater(t *testing.T) {
	url := closedURL(t)
	b := newBot(t, url, &countWorker{})
	done, _ := runBot(t, b)

	s, err := bus.StartServer(bus.ServerConfig{Listen: strings.TrimPrefix(url, "nats://")})
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	t.Cleanup(s.Close)
	nc := bustest.MustConnect(t, s)
	sub := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	nextHeartbeat(t, sub)
	// Subscriptions made while disconnected are in place too.
	msg := request(t, nc, bus.ShutdownSubject("tbot"), nil)
	if r, err := bus.DecodeReply(msg.Data); err != nil || !r.OK {
		t.Fatalf("shutdown reply %s (%v)", msg.Data, err)
	}
	mustReturn(t, done)
}
