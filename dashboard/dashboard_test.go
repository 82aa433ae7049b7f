package dashboard

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/session"
	"go.uber.org/goleak"
)

func TestTokenGeneratedAndReused(t *testing.T) {
	td := newTestDashboard(t)
	if err := td.Open(); err != nil {
		t.Fatalf("open: %v", err)
	}
	token := td.AccessToken()
	if b, err := hex.DecodeString(token); err != nil || len(b) != 32 {
		t.Errorf("generated token is not 32 bytes of hex (len %d)", len(token))
	}
	path := filepath.Join(td.DataDir, TokenFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read token file: %v", err)
	}
	if got := strings.TrimSpace(string(data)); got != token {
		t.Errorf("token file holds a different token")
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("stat token file: %v", err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("token file mode %v, want 0600", perm)
		}
	}

	out := td.out.String()
	for _, want := range []string{
		"http://" + td.Addr() + "/",
		"http://" + td.Addr() + "/login?code=",
		path,
		td.NATSURL(),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("operator output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(td.logs.String(), token) {
		t.Errorf("the token appears in the logs")
	}
	if strings.Contains(out, token) {
		t.Errorf("the token appears in the output, not only in its file:\n%s", out)
	}
	if err := td.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// A second dashboard on the same data dir keeps the token.
	td2 := newTestDashboard(t)
	td2.DataDir = td.DataDir
	if err := td2.Open(); err != nil {
		t.Fatalf("open again: %v", err)
	}
	defer td2.Close()
	if td2.AccessToken() != token {
		t.Errorf("token changed across restarts")
	}
}

func TestTokenGiven(t *testing.T) {
	td := newTestDashboard(t)
	td.Token = "given-token-0123456789"
	if err := td.Open(); err != nil {
		t.Fatalf("open: %v", err)
	}
	defer td.Close()
	if td.AccessToken() != td.Token {
		t.Errorf("AccessToken() is not the given token")
	}
	if _, err := os.Stat(filepath.Join(td.DataDir, TokenFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token file written although a token was given: %v", err)
	}
	if strings.Contains(td.logs.String(), td.Token) {
		t.Errorf("the token appears in the logs")
	}
}

func TestTokenFileGarbageReplaced(t *testing.T) {
	td := newTestDashboard(t)
	path := filepath.Join(td.DataDir, TokenFile)
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := td.Open(); err != nil {
		t.Fatalf("open: %v", err)
	}
	defer td.Close()
	if tok := td.AccessToken(); tok == "short" || len(tok) != 64 {
		t.Errorf("garbage token file was trusted")
	}
}

func TestDataDirNotWritable(t *testing.T) {
	td := newTestDashboard(t)
	file := filepath.Join(td.DataDir, "plain-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	td.DataDir = filepath.Join(file, "data") // a directory under a file cannot exist
	err := td.Open()
	if err == nil {
		td.Close()
		t.Fatal("Open succeeded with an unusable data dir")
	}
	if de := (*DataDirError)(nil); !errors.As(err, &de) || de.Dir != td.DataDir || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("unclear error: %v", err)
	} else {
		t.Logf("error: %v", err)
	}
}

func TestBadDefaultBot(t *testing.T) {
	td := newTestDashboard(t)
	td.DefaultBot = "no.dots"
	if err := td.Open(); !errors.Is(err, bus.ErrBadName) {
		td.Close()
		t.Fatalf("Open with a bad default bot: %v, want ErrBadName", err)
	}
}

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestHTTPPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	td := newTestDashboard(t)
	td.HTTPAddr = busy.Addr().String()
	td.NATSListen = freePort(t)
	err = td.Open()
	if err == nil {
		td.Close()
		t.Fatal("Open succeeded on a busy HTTP port")
	}
	if le := (*ListenError)(nil); !errors.As(err, &le) || le.What != "http" || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), td.HTTPAddr) {
		t.Errorf("unclear error: %v", err)
	} else {
		t.Logf("error: %v", err)
	}
	// The bus Open had started is down again: its port is free.
	ln, err := net.Listen("tcp", td.NATSListen)
	if err != nil {
		t.Fatalf("bus port %s still taken after the failed Open: %v", td.NATSListen, err)
	}
	ln.Close()
}

func TestNATSPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	td := newTestDashboard(t)
	td.NATSListen = busy.Addr().String()
	td.HTTPAddr = freePort(t)
	err = td.Open()
	if err == nil {
		td.Close()
		t.Fatal("Open succeeded on a busy bus port")
	}
	if le := (*ListenError)(nil); !errors.As(err, &le) || le.What != "bus" || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), td.NATSListen) {
		t.Errorf("unclear error: %v", err)
	} else {
		t.Logf("error: %v", err)
	}
	ln, err := net.Listen("tcp", td.HTTPAddr)
	if err != nil {
		t.Fatalf("HTTP port taken after the failed Open: %v", err)
	}
	ln.Close()
}

func TestHealthzNeedsNoToken(t *testing.T) {
	td := startDashboard(t)
	r := call(t, http.MethodGet, td.base+"/healthz", nil, nil)
	if r.code != http.StatusOK || string(r.body) != "ok" {
		t.Fatalf("healthz: %d %q", r.code, r.body)
	}
	for h, want := range map[string]string{
		"X-Content-Type-Options":       "nosniff",
		"X-Frame-Options":              "DENY",
		"Referrer-Policy":              "no-referrer",
		"Cross-Origin-Opener-Policy":   "same-origin",
		"Cross-Origin-Resource-Policy": "same-origin",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

func TestPageNeedsNoToken(t *testing.T) {
	td := startDashboard(t)
	r := call(t, http.MethodGet, td.base+"/", nil, nil)
	if r.code != http.StatusOK || !strings.Contains(string(r.body), `id="restart-btn"`) {
		t.Fatalf("page: %d %.200s", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("page Content-Type %q", ct)
	}
	for _, asset := range []string{"/static/app.js", "/static/style.css", "/static/favicon.svg"} {
		if r := call(t, http.MethodGet, td.base+asset, nil, nil); r.code != http.StatusOK || len(r.body) == 0 {
			t.Errorf("%s: HTTP %d", asset, r.code)
		}
	}
	if r := call(t, http.MethodGet, td.base+"/static/../dashboard.go", nil, nil); r.code != http.StatusNotFound {
		t.Errorf("path escape: HTTP %d", r.code)
	}
}

// apiRoutes is every /api route, plus an unknown one: the token check comes
// before routing.
func apiRoutes() [][2]string {
	return [][2]string{
		{http.MethodGet, "/api/session"},
		{http.MethodGet, "/api/bot/status"},
		{http.MethodPost, "/api/bot/restart"},
		{http.MethodGet, "/api/bots"},
		{http.MethodGet, "/api/bots/bot"},
		{http.MethodPost, "/api/bots/bot/restart"},
		{http.MethodPost, "/api/bots/bot/stop"},
		{http.MethodPost, "/api/bots/bot/start"},
		{http.MethodGet, "/api/events"},
		{http.MethodGet, "/api/stream"},
		{http.MethodGet, "/api/no-such-route"},
	}
}

func TestAPIRequiresToken(t *testing.T) {
	td := startDashboard(t)
	agent := startFakeAgent(t, connect(t, td), "bot")
	foreign := session.NewKeys("some-other-token-123456").New(time.Now())
	auths := map[string]map[string]string{
		"none":          nil,
		"wrong bearer":  bearer("wrong-token"),
		"empty bearer":  {"Authorization": "Bearer "},
		"basic":         {"Authorization": "Basic " + td.AccessToken()},
		"raw token":     {"Authorization": td.AccessToken()},
		"bogus cookie":  {"Cookie": SessionCookie + "=v1.1.abc"},
		"token cookie":  {"Cookie": SessionCookie + "=" + td.AccessToken()},
		"other session": {"Cookie": SessionCookie + "=" + foreign},
	}
	for _, route := range apiRoutes() {
		for authName, hdr := range auths {
			t.Run(route[0]+" "+route[1]+" "+authName, func(t *testing.T) {
				r := call(t, route[0], td.base+route[1], hdr, nil)
				if r.code != http.StatusUnauthorized {
					t.Fatalf("HTTP %d, want 401: %s", r.code, r.body)
				}
				if msg := r.errorText(t); msg != "missing or wrong token" {
					t.Errorf("error %q", msg)
				}
				if r.header.Get("X-Frame-Options") != "DENY" {
					t.Errorf("security headers missing on 401")
				}
			})
		}
	}
	if cmds := agent.commands(); len(cmds) != 0 {
		t.Errorf("unauthenticated requests reached the agent: %+v", cmds)
	}
}

func TestDefaultBotStatus(t *testing.T) {
	td := startDashboard(t)

	// No agent, no heartbeat: unknown, but known (it is the default bot).
	r := call(t, http.MethodGet, td.base+"/api/bot/status", bearer(td.AccessToken()), nil)
	if r.code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.code, r.body)
	}
	var st bus.Status
	r.json(t, &st)
	if st.Name != "bot" || st.State != bus.StateUnknown || st.Agent.Connected {
		t.Errorf("status without agent: %+v", st)
	}

	startFakeAgent(t, connect(t, td), "bot")
	r = call(t, http.MethodGet, td.base+"/api/bot/status", bearer(td.AccessToken()), nil)
	if r.code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.code, r.body)
	}
	st = bus.Status{}
	r.json(t, &st)
	if st.Name != "bot" || st.State != bus.StateRunning || st.PID != 101 || !st.Agent.Connected || st.Restarts != 2 {
		t.Errorf("status with agent: %+v", st)
	}
}

func TestRestart(t *testing.T) {
	td := startDashboard(t)
	agent := startFakeAgent(t, connect(t, td), "bot")

	r := call(t, http.MethodPost, td.base+"/api/bot/restart", bearer(td.AccessToken()), nil)
	if r.code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.code, r.body)
	}
	var reply bus.Reply
	r.json(t, &reply)
	if !reply.OK || reply.OldPID != 100 || reply.NewPID != 101 {
		t.Errorf("reply %+v", reply)
	}
	cmds := agent.commands()
	if len(cmds) != 1 || cmds[0].op != bus.OpRestart {
		t.Fatalf("agent got %+v, want one restart", cmds)
	}
	host, _ := os.Hostname()
	// What the dashboard says of itself; the agent puts the login ("dashboard") before it.
	if want := fmt.Sprintf("web, %s from 127.0.0.1", host); cmds[0].req.RequestedBy != want {
		t.Errorf("requested_by %q, want %q", cmds[0].req.RequestedBy, want)
	}

	for _, op := range []string{bus.OpStop, bus.OpStart, bus.OpRestart} {
		r := call(t, http.MethodPost, td.base+"/api/bots/bot/"+op, bearer(td.AccessToken()), nil)
		if r.code != http.StatusOK {
			t.Errorf("%s: HTTP %d: %s", op, r.code, r.body)
		}
	}
	if n := len(agent.commands()); n != 4 {
		t.Errorf("agent got %d commands, want 4", n)
	}
}

func TestRestartRefusedByAgent(t *testing.T) {
	td := startDashboard(t)
	agent := startFakeAgent(t, connect(t, td), "other")
	agent.mu.Lock()
	agent.refuse = true
	agent.mu.Unlock()

	r := call(t, http.MethodPost, td.base+"/api/bots/other/restart", bearer(td.AccessToken()), nil)
	if r.code != http.StatusConflict {
		t.Fatalf("HTTP %d, want 409: %s", r.code, r.body)
	}
	if msg := r.errorText(t); msg != "bot is in backoff" {
		t.Errorf("error %q, want the agent's", msg)
	}
}

func TestRestartWithoutAgent(t *testing.T) {
	td := startDashboard(t)
	for _, path := range []string{"/api/bot/restart", "/api/bots/bot/restart", "/api/bots/ghost/stop"} {
		r := call(t, http.MethodPost, td.base+path, bearer(td.AccessToken()), nil)
		if r.code != http.StatusServiceUnavailable {
			t.Fatalf("%s: HTTP %d, want 503: %s", path, r.code, r.body)
		}
		name := "bot"
		if strings.Contains(path, "ghost") {
			name = "ghost"
		}
		if msg, want := r.errorText(t), fmt.Sprintf("no agent is supervising bot %q", name); msg != want {
			t.Errorf("%s: error %q, want %q", path, msg, want)
		}
	}
}

func TestUnknownAndBadBot(t *testing.T) {
	td := startDashboard(t)
	r := call(t, http.MethodGet, td.base+"/api/bots/ghost", bearer(td.AccessToken()), nil)
	if r.code != http.StatusNotFound {
		t.Fatalf("unknown bot: HTTP %d: %s", r.code, r.body)
	}
	if msg := r.errorText(t); msg != `unknown bot "ghost"` {
		t.Errorf("error %q", msg)
	}
	for _, name := range []string{"bad.name", "bad%20name", strings.Repeat("x", 65), "*"} {
		r := call(t, http.MethodGet, td.base+"/api/bots/"+name, bearer(td.AccessToken()), nil)
		if r.code != http.StatusBadRequest {
			t.Errorf("GET bad name %q: HTTP %d: %s", name, r.code, r.body)
			continue
		}
		r.errorText(t)
		r = call(t, http.MethodPost, td.base+"/api/bots/"+name+"/restart", bearer(td.AccessToken()), nil)
		if r.code != http.StatusBadRequest {
			t.Errorf("POST bad name %q: HTTP %d: %s", name, r.code, r.body)
		}
	}
}

func TestBotKnownFromAgentOnly(t *testing.T) {
	td := startDashboard(t)
	startFakeAgent(t, connect(t, td), "quiet")
	// Asked directly, the dashboard finds the agent at once.
	r := call(t, http.MethodGet, td.base+"/api/bots/quiet", bearer(td.AccessToken()), nil)
	if r.code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.code, r.body)
	}
}

func TestDiscovery(t *testing.T) {
	td := startDashboard(t)
	startFakeAgent(t, connect(t, td), "found")
	// Nobody asks for it: discovery alone must bring it in.
	waitFor(t, "discovered agent in /api/bots", func() bool {
		var list botList
		call(t, http.MethodGet, td.base+"/api/bots", bearer(td.AccessToken()), nil).json(t, &list)
		for _, st := range list.Bots {
			if st.Name == "found" && st.Agent.Connected && st.State == bus.StateRunning {
				return true
			}
		}
		return false
	})
}

func TestRoutingErrors(t *testing.T) {
	td := startDashboard(t)
	auth := bearer(td.AccessToken())
	tests := []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/api/no-such-route", http.StatusNotFound},
		{http.MethodGet, "/api/bot/restart", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/api/bots", http.StatusMethodNotAllowed},
		{http.MethodPost, "/api/bots/bot/explode", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := call(t, tt.method, td.base+tt.path, auth, nil)
			if r.code != tt.code {
				t.Fatalf("HTTP %d, want %d: %s", r.code, tt.code, r.body)
			}
			r.errorText(t)
		})
	}
}

func TestBodyLimit(t *testing.T) {
	td := startDashboard(t)
	// A raw request that announces an oversized body and sends none: the
	// server must refuse it from the header alone (a real client writing
	// the body would race the server closing the connection).
	conn, err := net.Dial("tcp", td.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /api/bot/restart HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n",
		td.AccessToken(), bodyLimit+1)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("HTTP %d, want 413: %s", resp.StatusCode, data)
	}
	response{code: resp.StatusCode, body: data}.errorText(t)
}

func TestCookieLoginAndCSRF(t *testing.T) {
	td := startDashboard(t)
	agent := startFakeAgent(t, connect(t, td), "bot")

	// A wrong token gets a clear page, not a cookie.
	r := call(t, http.MethodGet, td.base+"/login?token=wrong", nil, nil)
	if r.code != http.StatusUnauthorized || !strings.Contains(string(r.body), "Wrong token") {
		t.Fatalf("wrong login: HTTP %d %s", r.code, r.body)
	}
	if len(r.header.Values("Set-Cookie")) != 0 {
		t.Errorf("wrong login set a cookie")
	}

	r = call(t, http.MethodGet, td.base+"/login?token="+td.AccessToken(), nil, nil)
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("login: HTTP %d Location %q", r.code, r.header.Get("Location"))
	}
	resp := &http.Response{Header: r.header}
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			sess = c
		}
	}
	if sess == nil {
		t.Fatal("login set no session cookie")
	}
	if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" {
		t.Errorf("cookie attributes: %+v", sess)
	}
	if strings.Contains(sess.Value, td.AccessToken()) {
		t.Errorf("cookie carries the raw token")
	}
	cookie := map[string]string{"Cookie": SessionCookie + "=" + sess.Value}

	r = call(t, http.MethodGet, td.base+"/api/session", cookie, nil)
	if r.code != http.StatusOK {
		t.Fatalf("session: HTTP %d %s", r.code, r.body)
	}
	var info sessionInfo
	r.json(t, &info)
	if info.Auth != "cookie" || info.CSRFToken == "" || info.DefaultBot != "bot" {
		t.Errorf("session info %+v", info)
	}

	// Reads work with the cookie alone; writes need the CSRF token.
	if r := call(t, http.MethodGet, td.base+"/api/bots", cookie, nil); r.code != http.StatusOK {
		t.Errorf("GET with cookie: HTTP %d", r.code)
	}
	for name, csrf := range map[string]string{"missing": "", "wrong": "nope", "other session's": session.NewKeys(td.AccessToken()).CSRF("v1.1.x")} {
		hdr := map[string]string{"Cookie": cookie["Cookie"]}
		if csrf != "" {
			hdr[CSRFHeader] = csrf
		}
		if r := call(t, http.MethodPost, td.base+"/api/bot/restart", hdr, nil); r.code != http.StatusForbidden {
			t.Errorf("POST with %s CSRF token: HTTP %d, want 403", name, r.code)
		}
	}
	if cmds := agent.commands(); len(cmds) != 0 {
		t.Fatalf("requests without CSRF token reached the agent: %+v", cmds)
	}
	hdr := map[string]string{"Cookie": cookie["Cookie"], CSRFHeader: info.CSRFToken}
	if r := call(t, http.MethodPost, td.base+"/api/bot/restart", hdr, nil); r.code != http.StatusOK {
		t.Fatalf("POST with CSRF token: HTTP %d %s", r.code, r.body)
	}
	if cmds := agent.commands(); len(cmds) != 1 {
		t.Errorf("agent got %d commands, want 1", len(cmds))
	}

	// Logout (a POST with the session's logout token) clears the cookie.
	r = call(t, http.MethodPost, td.base+"/logout", map[string]string{"Cookie": cookie["Cookie"], CSRFHeader: info.LogoutToken}, nil)
	if r.code != http.StatusSeeOther {
		t.Fatalf("logout: HTTP %d", r.code)
	}
	cleared := false
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookie && c.Value == "" && c.MaxAge < 0 {
			cleared = true
		}
	}
	if !cleared {
		t.Errorf("logout did not clear the cookie: %v", r.header.Values("Set-Cookie"))
	}
}

func TestLoginForm(t *testing.T) {
	td := startDashboard(t)
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

	r := call(t, http.MethodPost, td.base+"/login", form, strings.NewReader("token=wrong"))
	if r.code != http.StatusUnauthorized || !strings.Contains(string(r.body), `id="login-message"`) ||
		!strings.Contains(string(r.body), "Wrong token") {
		t.Fatalf("wrong token: HTTP %d %s", r.code, r.body)
	}
	if len(r.header.Values("Set-Cookie")) != 0 {
		t.Errorf("wrong token set a cookie")
	}
	// The page the form comes back on posts again, without inline script.
	if body := string(r.body); !strings.Contains(body, `method="post"`) || strings.Contains(body, "<script") || strings.Contains(body, "style=") {
		t.Errorf("login page: %s", body)
	}

	r = call(t, http.MethodPost, td.base+"/login", form, strings.NewReader("token="+url.QueryEscape(td.AccessToken()+"\n")))
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("login: HTTP %d Location %q", r.code, r.header.Get("Location"))
	}
	var sess string
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookie {
			sess = c.Value
		}
	}
	if sess == "" {
		t.Fatal("form login set no session cookie")
	}
	if r := call(t, http.MethodGet, td.base+"/api/session", map[string]string{"Cookie": SessionCookie + "=" + sess}, nil); r.code != http.StatusOK {
		t.Errorf("session after form login: HTTP %d", r.code)
	}

	// An empty form shows the form, not an error.
	if r := call(t, http.MethodPost, td.base+"/login", form, strings.NewReader("token=")); r.code != http.StatusOK {
		t.Errorf("empty form: HTTP %d", r.code)
	}
}

func TestLoginLimiter(t *testing.T) {
	td := startDashboard(t)
	limited := false
	for range session.FreeFailures + 2 {
		r := call(t, http.MethodGet, td.base+"/login?token=wrong", nil, nil)
		if r.code == http.StatusTooManyRequests {
			limited = true
			if r.header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
			break
		}
		if r.code != http.StatusUnauthorized {
			t.Fatalf("HTTP %d", r.code)
		}
	}
	if !limited {
		t.Errorf("repeated wrong tokens were never limited")
	}
	if strings.Contains(td.logs.String(), "token=") {
		t.Errorf("a login URL reached the logs")
	}
}

func TestStream(t *testing.T) {
	td := startDashboard(t)
	events := openStream(t, td)
	// The snapshot comes first: the default bot, unknown.
	nextEvent(t, events, "snapshot of the default bot", statusEvent("bot", bus.StateUnknown))

	nc := connect(t, td)
	hb := bus.Heartbeat{Name: "beater", PID: 4242, Host: "h", Seq: 1, Time: time.Now(), StartedAt: time.Now()}
	if err := nc.Publish(bus.HeartbeatSubject("beater"), bus.Encode(hb)); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, events, "status of the heartbeating bot", statusEvent("beater", bus.StateRunning))
	st, _ := findStatus(ev, "beater", "")
	if st.PID != 4242 || st.Agent.Connected {
		t.Errorf("status from heartbeat: %+v", st)
	}

	e := bus.Event{Time: time.Now(), Name: "beater", Type: bus.EventRestarted, PID: 4243, Reason: "test"}
	if err := nc.Publish(bus.EventsSubject("beater"), bus.Encode(e)); err != nil {
		t.Fatal(err)
	}
	ev = nextEvent(t, events, "lifecycle event", func(ev sseEvent) bool { return ev.name == "event" })
	got, err := bus.DecodeEvent([]byte(ev.data))
	if err != nil || got.Type != bus.EventRestarted || got.PID != 4243 {
		t.Errorf("event %s (%v)", ev.data, err)
	}

	// The event is kept for /api/events too.
	var list struct {
		Events []bus.Event `json:"events"`
	}
	call(t, http.MethodGet, td.base+"/api/events", bearer(td.AccessToken()), nil).json(t, &list)
	if len(list.Events) != 1 || list.Events[0].PID != 4243 {
		t.Errorf("/api/events: %+v", list.Events)
	}
}

func TestBadMessagesIgnored(t *testing.T) {
	td := startDashboard(t)
	nc := connect(t, td)
	for _, m := range []struct{ subject, data string }{
		{bus.HeartbeatSubject("x"), "not json"},
		{bus.HeartbeatSubject("x"), `{"name":"y","pid":5}`}, // name differs from the subject
		{bus.HeartbeatSubject("x"), `{"name":"x","pid":0}`},
		{bus.EventsSubject("x"), "{"},
	} {
		if err := nc.Publish(m.subject, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "bad messages counted", func() bool {
		var list botList
		call(t, http.MethodGet, td.base+"/api/bots", bearer(td.AccessToken()), nil).json(t, &list)
		return list.BadMessages == 4
	})
	if r := call(t, http.MethodGet, td.base+"/api/bots/x", bearer(td.AccessToken()), nil); r.code != http.StatusNotFound {
		t.Errorf("a bot from garbage became known: HTTP %d", r.code)
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	// Goroutines left by earlier tests (idle client connections) are not ours.
	leaks := goleak.IgnoreCurrent()
	td := newTestDashboard(t)
	if err := td.Open(); err != nil {
		t.Fatal(err)
	}
	td.base = "http://" + td.Addr()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- td.Run(ctx) }()
	waitFor(t, "healthz", func() bool {
		resp, err := http.Get(td.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	events := openStream(t, td)
	nextEvent(t, events, "snapshot", statusEvent("bot", ""))

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				goto ended
			}
		case <-timeout:
			t.Fatal("stream still open after Run returned")
		}
	}
ended:
	// Everything is released: both ports can be bound again.
	for _, addr := range []string{td.Addr(), strings.TrimPrefix(td.NATSURL(), "nats://")} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still bound after Run: %v", addr, err)
			continue
		}
		ln.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	// Every goroutine the dashboard started has ended with Run, except two
	// of fasthttp's that nothing outside it can wait for: the idle-worker
	// cleaner notices the stop only after its sleep (up to 10 s), and the
	// Date header ticker lives as long as the process.
	goleak.VerifyNone(t, leaks,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}
