package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"github.com/nats-io/nats.go"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/proctest"
)

// lazyPair is a lazyConn (reads at most every hour unless hurried) and the
// server end of its socket.
func lazyPair(t *testing.T) (*lazyDialer, *lazyConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	d := &lazyDialer{every: time.Hour}
	nc, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*lazyConn)
	t.Cleanup(func() { c.Close() })
	srv := <-accepted
	if srv == nil {
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { srv.Close() })
	return d, c, srv
}

// readAsync reads once from c in the background.
func readAsync(c net.Conn) <-chan string {
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	return got
}

func within(t *testing.T, ch <-chan string, d time.Duration, what string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(d):
		t.Fatalf("%s: nothing within %s", what, d)
		return ""
	}
}

// TestLazyConnReadsOnlyWhenDueOrHurried: after a read, what comes next
// waits in the kernel until the next read is due (an hour here), with the
// socket in no poller so that its arrival wakes nobody; a hurry (a hang
// check's round trip) reads it at once, and so do reads until calm.
func TestLazyConnReadsOnlyWhenDueOrHurried(t *testing.T) {
	d, c, srv := lazyPair(t)
	if fds := proctest.Polled(); fds[c.fd] {
		t.Fatalf("the lazy socket (fd %d) is in the poller", c.fd)
	}
	if _, err := srv.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	if got := within(t, readAsync(c), 5*time.Second, "first read"); got != "first" {
		t.Fatalf("first read: %q", got)
	}
	if _, err := srv.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	got := readAsync(c)
	// The claim is that nothing happens for a while: a bounded window.
	select {
	case s := <-got:
		t.Fatalf("read %q at once, not lazily", s)
	case <-time.After(300 * time.Millisecond):
	}
	d.hurry()
	if s := within(t, got, 5*time.Second, "hurried read"); s != "second" {
		t.Fatalf("hurried read: %q", s)
	}
	// Still hurried: the answer to a round trip is read as it comes.
	got = readAsync(c)
	if _, err := srv.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if s := within(t, got, 5*time.Second, "read while hurried"); s != "pong" {
		t.Fatalf("read while hurried: %q", s)
	}
	d.calm()
	if _, err := srv.Write([]byte("third")); err != nil {
		t.Fatal(err)
	}
	got = readAsync(c)
	select {
	case s := <-got:
		t.Fatalf("read %q at once after calm", s)
	case <-time.After(300 * time.Millisecond):
	}
	c.Close()
	if s := within(t, got, 5*time.Second, "read after close"); s != "error: "+net.ErrClosed.Error() {
		t.Fatalf("read after close: %q", s)
	}
}

// TestLazyConnCloseWakesABlockedRead: a read blocked in read(2) on an
// empty socket returns at Close (a plain close would not wake it).
func TestLazyConnCloseWakesABlockedRead(t *testing.T) {
	d, c, _ := lazyPair(t)
	d.hurry() // no waiting: straight into read(2)
	got := readAsync(c)
	select {
	case s := <-got:
		t.Fatalf("read %q from an empty socket", s)
	case <-time.After(300 * time.Millisecond): // blocked, as it should be
	}
	c.Close()
	if s := within(t, got, 5*time.Second, "read after close"); s != "error: "+net.ErrClosed.Error() {
		t.Fatalf("read after close: %q", s)
	}
}

// TestLazyConnDeadlines: nats.go's handshake sets a deadline and expects a
// timeout error; the peer's close is io.EOF.
func TestLazyConnDeadlines(t *testing.T) {
	_, c, srv := lazyPair(t)
	if err := c.SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("server read %q, %v", buf, err)
	}
	srv.Close()
	c.eager.Add(1) // no waiting for the next read
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}
}

// TestBeatTime: a heartbeat read late counts from when the bot sent it, but
// a bot's clock can move it no later than its arrival and no earlier than
// the lazy window before it.
func TestBeatTime(t *testing.T) {
	arrived := time.Now()
	for _, c := range []struct {
		name string
		sent time.Time
		want time.Time
	}{
		{"sent within the window", arrived.Add(-200 * time.Millisecond), arrived.Add(-200 * time.Millisecond)},
		{"sent at arrival", arrived, arrived},
		{"from the future", arrived.Add(time.Hour), arrived},
		{"older than the window", arrived.Add(-time.Hour), arrived},
		{"no time at all", time.Time{}, arrived},
	} {
		got := beatTime(c.sent, arrived)
		if !got.Equal(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got.Sub(arrived), c.want.Sub(arrived))
		}
		// On the monotonic clock, as arrivals are: a stepped wall clock
		// moves no deadline. (Round(0) strips the reading; == compares it.)
		if got == got.Round(0) {
			t.Errorf("%s: lost the monotonic reading", c.name)
		}
	}
}

// TestHeartbeatReadLateIsNoHang: a bot beating every 300 ms with a 400 ms
// timeout has each heartbeat read up to 250 ms late (lazyEvery), often
// after the deadline its last one set. The hang check's round trip must
// bring the waiting one in: the bot is never declared hung.
func TestHeartbeatReadLateIsNoHang(t *testing.T) {
	nc, a, _ := newTestAgent(t, "slowbeat")
	a.StopBotOnExit = true // the bot must not outlive the test (it had, in CI)
	h := mustStart(t, nc, a)
	first := h.running()
	// The claim is that nothing happens: ten timeouts' worth, bounded.
	deadline := time.After(4 * time.Second)
	for {
		select {
		case ev := <-h.events:
			if ev.Type == bus.EventHung || ev.Type == bus.EventKilled || ev.Type == bus.EventStarted && ev.PID != first.PID {
				t.Fatalf("a live bot's late-read heartbeats: %s event (%s)", ev.Type, ev.Reason)
			}
			continue
		case <-deadline:
		}
		break
	}
	if st := h.running(); st.PID != first.PID || st.Restarts != first.Restarts {
		t.Fatalf("bot replaced: pid %d -> %d, restarts %d -> %d", first.PID, st.PID, first.Restarts, st.Restarts)
	}
}

// TestHeartbeatsOverTLS: over a TLS bus (agents on other hosts), the lazy
// heartbeat connection carries TLS too: a bot held to heartbeats gets to
// running on them, stays running while they come, and is declared hung
// once they stop.
func TestHeartbeatsOverTLS(t *testing.T) {
	cert, key := bustest.SelfSigned(t)
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: t.Name(), TLSCert: cert, TLSKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	url := "tls://" + srv.Addr().String()
	nc, err := nats.Connect(url, nats.RootCAs(cert))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	events := make(chan bus.Event, 64)
	if _, err := nc.Subscribe(bus.EventsSubject("tlsbot"), func(m *nats.Msg) {
		if ev, err := bus.DecodeEvent(m.Data); err == nil {
			events <- ev
		}
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bot := sleeper(dir, "tlsbot")
	bot.RequireHeartbeat, bot.HeartbeatTimeout, bot.StartTimeout = true, 400*time.Millisecond, 10*time.Second
	f := &Fleet{NATSURL: url, NATSCA: cert, Logger: slog.New(slog.DiscardHandler), Bots: []Agent{bot}}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("fleet: %v", err)
		}
	})
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no bot started")
		}
		pid, _ = pidfile.Read(bot.PIDFile)
	}
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			hb := bus.Heartbeat{Name: "tlsbot", PID: pid, Host: "test", Seq: seq, Time: time.Now()}
			nc.Publish(bus.HeartbeatSubject("tlsbot"), bus.Encode(hb))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	if got := fleetRunning(t, nc, "tlsbot"); got != pid {
		t.Fatalf("running with pid %d, want %d", got, pid)
	}
	// Running on TLS-borne heartbeats; a second of them (bounded window)
	// must not look like a hang.
	window := time.After(time.Second)
	for waiting := true; waiting; {
		select {
		case ev := <-events:
			if ev.Type == bus.EventHung || ev.Type == bus.EventKilled {
				t.Fatalf("%s while heartbeats came: %s", ev.Type, ev.Reason)
			}
		case <-window:
			waiting = false
		}
	}
	close(stop)
	<-beating
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Type == bus.EventKilled && ev.PID == pid {
				return
			}
		case <-deadline:
			t.Fatal("no hang declared after the heartbeats stopped")
		}
	}
}
