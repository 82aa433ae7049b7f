package dashboard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopbackRemote stands in for a tunnel: a real listener on loopback, with
// a public URL made up for the banner. It records whether Listen was
// called and whether the listener it gave was closed.
type loopbackRemote struct {
	url string
	err error // returned by Listen instead of a listener

	mu     sync.Mutex
	ln     *recordingListener
	called int
}

func (r *loopbackRemote) Listen(ctx context.Context) (net.Listener, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.called++
	if r.err != nil {
		return nil, "", r.err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	r.ln = &recordingListener{Listener: ln, closed: make(chan struct{})}
	return r.ln, r.url, nil
}

func (r *loopbackRemote) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.called
}

func (r *loopbackRemote) listener() *recordingListener {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ln
}

type recordingListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *recordingListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *recordingListener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// TestRemoteListenerServesAndClosesWithDashboard: the page and the API are
// served on the remote listener too, behind the same tokens; its URL is
// printed; it is closed when the dashboard stops.
func TestRemoteListenerServesAndClosesWithDashboard(t *testing.T) {
	remote := &loopbackRemote{url: "https://lifeline-test.ngrok.example"}
	td := newTestDashboard(t)
	td.Remote = remote
	ctx, cancel := context.WithCancel(context.Background())
	if err := td.OpenContext(ctx); err != nil {
		t.Fatal(err)
	}
	td.base = "http://" + td.Addr()
	done := make(chan error, 1)
	go func() { done <- td.Run(ctx) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Error("Run did not return")
			}
		}
	}()
	ln := remote.listener()
	if n := remote.calls(); ln == nil || n != 1 {
		t.Fatalf("Listen called %d times", n)
	}
	if td.Addr() == ln.Addr().String() {
		t.Fatal("Addr() is the remote listener's")
	}
	if td.RemoteURL() != remote.url {
		t.Errorf("RemoteURL() = %q", td.RemoteURL())
	}
	out := td.out.String()
	for _, want := range []string{"  remote:     " + remote.url + "/\n", remote.url + "/login?code="} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	startFakeAgent(t, connect(t, td), "bot")

	rbase := "http://" + ln.Addr().String()
	waitFor(t, "healthz through the remote listener", func() bool {
		resp, err := http.Get(rbase + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if r := call(t, "GET", rbase+"/api/bot/status", nil, nil); r.code != http.StatusUnauthorized {
		t.Errorf("remote API without a token: HTTP %d, want 401", r.code)
	}
	if r := call(t, "POST", rbase+"/api/bot/restart", bearer(td.ViewerAccessToken()), nil); r.code != http.StatusForbidden {
		t.Errorf("remote restart with the viewer token: HTTP %d, want 403", r.code)
	}
	if r := call(t, "POST", rbase+"/api/bot/restart", bearer(td.AccessToken()), nil); r.code != http.StatusOK {
		t.Errorf("remote restart with the token: HTTP %d %s", r.code, r.body)
	}
	// The local listener still serves.
	if r := call(t, "GET", td.base+"/api/bot/status", bearer(td.AccessToken()), nil); r.code != http.StatusOK {
		t.Errorf("local status: HTTP %d", r.code)
	}
	// A login through the https tunnel gets a cookie browsers send over
	// https only; a login over local plain HTTP cannot.
	for _, tc := range []struct {
		where, base string
		secure      bool
	}{{"remote", rbase, true}, {"local", td.base, false}} {
		r := call(t, http.MethodGet, tc.base+"/login?token="+td.AccessToken(), nil, nil)
		var got *http.Cookie
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			if c.Name == SessionCookie {
				got = c
			}
		}
		if got == nil {
			t.Errorf("%s login: HTTP %d, no session cookie", tc.where, r.code)
		} else if got.Secure != tc.secure {
			t.Errorf("%s login: cookie Secure=%v, want %v", tc.where, got.Secure, tc.secure)
		}
	}
	if ln.isClosed() {
		t.Fatal("remote listener closed while the dashboard runs")
	}

	cancel()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		stopped = true // no use waiting again
		t.Fatal("Run did not return")
	}
	if !ln.isClosed() {
		t.Fatal("remote listener left open after the dashboard stopped")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("remote address still accepts connections")
	}
}

// TestRemoteListenerDiesDashboardStays: a tunnel that dies is logged; the
// dashboard keeps serving locally.
func TestRemoteListenerDiesDashboardStays(t *testing.T) {
	remote := &loopbackRemote{url: "https://x.example"}
	td := newTestDashboard(t)
	td.Remote = remote
	mustRun(t, td)
	remote.listener().Listener.Close() // gone from under the dashboard
	waitFor(t, "the log to say remote access stopped", func() bool {
		return strings.Contains(td.logs.String(), "remote access stopped")
	})
	if r := call(t, "GET", td.base+"/healthz", nil, nil); r.code != http.StatusOK {
		t.Fatalf("local healthz after the tunnel died: HTTP %d", r.code)
	}
}

// TestRemoteListenerFailsNothingStarted: when the remote listener cannot be
// opened, Open fails with ErrRemote and releases the HTTP and bus ports.
func TestRemoteListenerFailsNothingStarted(t *testing.T) {
	httpAddr, busAddr := freeAddr(t), freeAddr(t)
	td := newTestDashboard(t)
	td.HTTPAddr, td.NATSListen = httpAddr, busAddr
	td.Remote = &loopbackRemote{err: errors.New("tunnel refused")}
	err := td.Open()
	if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "tunnel refused") {
		t.Fatalf("Open: %v, want ErrRemote with the cause", err)
	}
	for _, addr := range []string{httpAddr, busAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s still taken after the failed Open: %v", addr, err)
		}
		ln.Close()
	}
	if strings.Contains(td.out.String(), "page:") {
		t.Errorf("banner printed for a dashboard that did not start:\n%s", td.out)
	}
}

// blockingRemote waits for its context, as a tunnel with no network would.
type blockingRemote struct{}

func (blockingRemote) Listen(ctx context.Context) (net.Listener, string, error) {
	<-ctx.Done()
	return nil, "", ctx.Err()
}

// TestRemoteListenerCancelled: Ctrl+C while the tunnel is opening ends
// OpenContext at once.
func TestRemoteListenerCancelled(t *testing.T) {
	td := newTestDashboard(t)
	td.Remote = blockingRemote{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- td.OpenContext(ctx) }()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrRemote) {
			t.Fatalf("OpenContext: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OpenContext did not return after cancel")
	}
}
