package dashboard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/lifeline-dev/lifeline/dashboard/session"
	"github.com/nats-io/nats.go"
)

// connectAdmin opens a test client on td's bus with the dashboard's own
// login when it has one, so the test holds whatever the bus requires.
func connectAdmin(t *testing.T, td *testDashboard) *nats.Conn {
	t.Helper()
	var opts []nats.Option
	if td.admin.Name != "" {
		opts = append(opts, nats.UserInfo(td.admin.Name, td.admin.Password))
	}
	nc, err := nats.Connect(td.NATSURL(), opts...)
	if err != nil {
		t.Fatalf("connect to bus: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// loginCookie logs in with the token through the form and returns the
// session cookie's value.
func loginCookie(t *testing.T, base, token string) string {
	t.Helper()
	r := call(t, http.MethodPost, base+"/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		strings.NewReader("token="+url.QueryEscape(token)))
	if r.code != http.StatusSeeOther {
		t.Fatalf("login: HTTP %d %s", r.code, r.body)
	}
	return sessionCookie(t, r)
}

func cookieHdr(sess string) map[string]string {
	return map[string]string{"Cookie": SessionCookie + "=" + sess}
}

var loginLine = regexp.MustCompile(`(?m)^  login:\s+(\S+)`)

// bannerLink returns the login link the banner printed.
func bannerLink(t *testing.T, td *testDashboard) string {
	t.Helper()
	m := loginLine.FindStringSubmatch(td.out.String())
	if m == nil {
		t.Fatalf("no login line in the banner:\n%s", td.out)
	}
	return m[1]
}

func wantNoCookie(t *testing.T, what string, r response) {
	t.Helper()
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookie && c.Value != "" {
			t.Errorf("%s set a session cookie", what)
		}
	}
}

// TestTLSSecureCookieAndHSTS: over the real TLS listener the session cookie
// is Secure and every answer (errors too) carries HSTS; over plain HTTP
// neither, as HSTS there would be a lie and a Secure cookie would be lost.
func TestTLSSecureCookieAndHSTS(t *testing.T) {
	cert, key := bustest.SelfSigned(t)
	td := newTestDashboard(t)
	td.TLSCert, td.TLSKey = cert, key
	if err := td.Open(); err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       20 * time.Second,
	}
	// Its keep-alive connections would outlive the test and fail goleak.
	t.Cleanup(client.CloseIdleConnections)
	base := "https://" + td.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- td.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "HTTPS healthz", func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	do := func(method, path, contentType, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := do(http.MethodPost, "/login", "application/x-www-form-urlencoded", "token="+url.QueryEscape(td.AccessToken()))
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			sess = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || sess == nil {
		t.Fatalf("HTTPS login: HTTP %d, cookie %v", resp.StatusCode, sess)
	}
	if !sess.Secure {
		t.Errorf("session cookie over HTTPS lacks Secure: %v", resp.Header.Values("Set-Cookie"))
	}
	for _, p := range []struct{ method, path string }{
		{http.MethodGet, "/"}, {http.MethodGet, "/healthz"}, {http.MethodGet, "/api/bots"}, {http.MethodGet, "/no-such-page"},
		{http.MethodPost, "/login"},
	} {
		resp := do(p.method, p.path, "", "")
		if got := resp.Header.Get("Strict-Transport-Security"); got != hsts {
			t.Errorf("HTTPS %s %s (HTTP %d): Strict-Transport-Security %q, want %q", p.method, p.path, resp.StatusCode, got, hsts)
		}
	}
	// The one-time link printed for HTTPS is an https link.
	if link := bannerLink(t, td); !strings.HasPrefix(link, "https://") {
		t.Errorf("banner link %q is not https", link)
	}

	plain := startDashboard(t)
	r := call(t, http.MethodPost, plain.base+"/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		strings.NewReader("token="+url.QueryEscape(plain.AccessToken())))
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookie && c.Secure {
			t.Errorf("a cookie set over plain HTTP is Secure: the browser would never send it back")
		}
	}
	for _, p := range []string{"/", "/healthz", "/api/bots", "/login"} {
		if got := call(t, http.MethodGet, plain.base+p, nil, nil).header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("plain HTTP %s carries Strict-Transport-Security %q", p, got)
		}
	}
}

// TestLoginLinkWorksOnce: the banner prints a one-time link, never the
// token; the link opens an operator session once, and a replay gets 401
// and no cookie. POST /api/login-link makes fresh ones, for an operator
// only.
func TestLoginLinkWorksOnce(t *testing.T) {
	td := startDashboard(t)
	if out := td.out.String(); strings.Contains(out, td.AccessToken()) || strings.Contains(out, "token=") {
		t.Errorf("the banner shows the token:\n%s", out)
	}
	link := bannerLink(t, td)
	if !strings.HasPrefix(link, td.base+"/login?code=") {
		t.Fatalf("banner link %q", link)
	}
	r := call(t, http.MethodGet, link, nil, nil)
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("first use of the link: HTTP %d %s", r.code, r.body)
	}
	if info := getSession(t, td, cookieHdr(sessionCookie(t, r))); info.Role != "operator" || info.CSRFToken == "" {
		t.Errorf("session from the link: %+v", info)
	}
	again := call(t, http.MethodGet, link, nil, nil)
	if again.code != http.StatusUnauthorized || !strings.Contains(string(again.body), "already used or has expired") {
		t.Errorf("replayed link: HTTP %d %s", again.code, again.body)
	}
	wantNoCookie(t, "a replayed link", again)
	for _, code := range []string{"nope", strings.Repeat("0", 64), "%00"} {
		r := call(t, http.MethodGet, td.base+"/login?code="+code, nil, nil)
		if r.code != http.StatusUnauthorized {
			t.Errorf("made-up code %q: HTTP %d", code, r.code)
		}
		wantNoCookie(t, "a made-up code", r)
	}

	// Fresh links: operator Bearer only; a viewer may not mint any.
	if r := call(t, http.MethodPost, td.base+"/api/login-link", nil, nil); r.code != http.StatusUnauthorized {
		t.Errorf("login-link without a token: HTTP %d", r.code)
	}
	if r := call(t, http.MethodPost, td.base+"/api/login-link", bearer(td.ViewerAccessToken()), nil); r.code != http.StatusForbidden {
		t.Errorf("login-link with the viewer token: HTTP %d", r.code)
	}
	sess := loginCookie(t, td.base, td.AccessToken())
	if r := call(t, http.MethodPost, td.base+"/api/login-link", cookieHdr(sess), nil); r.code != http.StatusForbidden {
		t.Errorf("login-link with a cookie and no CSRF token: HTTP %d", r.code)
	}
	if r := call(t, http.MethodPost, td.base+"/api/login-link", bearer(td.AccessToken()), strings.NewReader(`{"role":"admin"}`)); r.code != http.StatusBadRequest {
		t.Errorf("login-link for a made-up role: HTTP %d", r.code)
	}
	for _, tc := range []struct{ body, role string }{{"", "operator"}, {`{"role":"viewer"}`, "viewer"}} {
		r := call(t, http.MethodPost, td.base+"/api/login-link", bearer(td.AccessToken()), strings.NewReader(tc.body))
		if r.code != http.StatusOK {
			t.Fatalf("login-link %q: HTTP %d %s", tc.body, r.code, r.body)
		}
		var got loginLinkReply
		r.json(t, &got)
		if !got.OK || got.Role != tc.role || got.URL != td.base+got.Path || time.Until(got.ExpiresAt) > session.LinkTTL {
			t.Fatalf("login-link %q: %s", tc.body, r.body)
		}
		lr := call(t, http.MethodGet, got.URL, nil, nil)
		if info := getSession(t, td, cookieHdr(sessionCookie(t, lr))); info.Role != tc.role {
			t.Errorf("link for %s opened %+v", tc.role, info)
		}
		if r := call(t, http.MethodGet, got.URL, nil, nil); r.code != http.StatusUnauthorized {
			t.Errorf("fresh link replayed: HTTP %d", r.code)
		}
	}
	// Bearer keeps working for scripts, and so does the old ?token= form.
	if r := call(t, http.MethodGet, td.base+"/api/bots", bearer(td.AccessToken()), nil); r.code != http.StatusOK {
		t.Errorf("Bearer: HTTP %d", r.code)
	}
	if r := call(t, http.MethodGet, td.base+"/login?token="+url.QueryEscape(td.AccessToken()), nil, nil); r.code != http.StatusSeeOther {
		t.Errorf("old ?token= login: HTTP %d", r.code)
	}
	if strings.Contains(td.logs.String(), link[strings.Index(link, "code=")+5:]) {
		t.Errorf("the logs hold a login code")
	}
}

// TestLogoutRevokes: after POST /logout a copy of the old cookie gets 401
// and commands nothing, even after a restart; GET /logout and a POST without
// the logout token log nobody out; other sessions live on.
func TestLogoutRevokes(t *testing.T) {
	td := newTestDashboard(t)
	td.Token = "logout-test-token-0123456789"
	stop := mustRun(t, td)
	agent := startFakeAgent(t, connectAdmin(t, td), "bot")

	sess, other := loginCookie(t, td.base, td.Token), loginCookie(t, td.base, td.Token)
	viewer := loginCookie(t, td.base, td.ViewerAccessToken())
	info := getSession(t, td, cookieHdr(sess))
	if info.LogoutToken == "" || info.LogoutToken == info.CSRFToken {
		t.Fatalf("session info %+v", info)
	}

	// Harmless: a GET, and POSTs without the right logout token.
	if r := call(t, http.MethodGet, td.base+"/logout", cookieHdr(sess), nil); r.code != http.StatusSeeOther {
		t.Errorf("GET /logout: HTTP %d", r.code)
	}
	for name, tok := range map[string]string{"no": "", "a wrong": "nope", "the CSRF token as": info.CSRFToken,
		"another session's": getSession(t, td, cookieHdr(other)).LogoutToken} {
		hdr := cookieHdr(sess)
		if tok != "" {
			hdr[CSRFHeader] = tok
		}
		if r := call(t, http.MethodPost, td.base+"/logout", hdr, nil); r.code != http.StatusForbidden {
			t.Errorf("logout with %s logout token: HTTP %d", name, r.code)
		}
	}
	getSession(t, td, cookieHdr(sess)) // still logged in

	// The page's form: the token in the csrf field.
	hdr := cookieHdr(sess)
	hdr["Content-Type"] = "application/x-www-form-urlencoded"
	r := call(t, http.MethodPost, td.base+"/logout", hdr, strings.NewReader("csrf="+url.QueryEscape(info.LogoutToken)))
	if r.code != http.StatusSeeOther {
		t.Fatalf("logout: HTTP %d %s", r.code, r.body)
	}
	replayed := func(when string) {
		t.Helper()
		if r := call(t, http.MethodGet, td.base+"/api/session", cookieHdr(sess), nil); r.code != http.StatusUnauthorized {
			t.Errorf("%s: the logged-out cookie reads: HTTP %d", when, r.code)
		}
		hdr := cookieHdr(sess)
		hdr[CSRFHeader] = info.CSRFToken
		if r := call(t, http.MethodPost, td.base+"/api/bot/restart", hdr, nil); r.code != http.StatusUnauthorized {
			t.Errorf("%s: the logged-out cookie restarts: HTTP %d", when, r.code)
		}
		if cmds := agent.commands(); len(cmds) != 0 {
			t.Fatalf("%s: a logged-out cookie reached the agent: %+v", when, cmds)
		}
	}
	replayed("after logout")
	getSession(t, td, cookieHdr(other))

	// A viewer logs out the same way.
	vinfo := getSession(t, td, cookieHdr(viewer))
	vh := cookieHdr(viewer)
	vh[CSRFHeader] = vinfo.LogoutToken
	if r := call(t, http.MethodPost, td.base+"/logout", vh, nil); r.code != http.StatusSeeOther {
		t.Errorf("viewer logout: HTTP %d", r.code)
	}
	if r := call(t, http.MethodGet, td.base+"/api/bots", cookieHdr(viewer), nil); r.code != http.StatusUnauthorized {
		t.Errorf("the logged-out viewer cookie reads: HTTP %d", r.code)
	}

	// A restart on the same data dir and token keeps the logout.
	stop()
	td2 := newTestDashboard(t)
	td2.DataDir, td2.Token = td.DataDir, td.Token
	mustRun(t, td2)
	td.base = td2.base
	agent = startFakeAgent(t, connectAdmin(t, td2), "bot")
	replayed("after a restart")
	getSession(t, td2, cookieHdr(other)) // sessions not logged out survive
	if fi, err := os.Stat(filepath.Join(td.DataDir, session.File)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("sessions file: %v %v", fi, err)
	}
}

// TestTokenChangeEndsSessions: a cookie from before the token changed (a
// new --token, or a new token file) gets 401.
func TestTokenChangeEndsSessions(t *testing.T) {
	td := newTestDashboard(t)
	td.Token = "the-first-token-0123456789"
	stop := mustRun(t, td)
	sess := loginCookie(t, td.base, td.Token)
	stop()

	td2 := newTestDashboard(t)
	td2.DataDir, td2.Token = td.DataDir, "the-second-token-0123456789"
	stop = mustRun(t, td2)
	if r := call(t, http.MethodGet, td2.base+"/api/bots", cookieHdr(sess), nil); r.code != http.StatusUnauthorized {
		t.Errorf("cookie from the old --token: HTTP %d", r.code)
	}
	stop()

	// The token file: generated, then replaced while the dashboard is down.
	td3 := newTestDashboard(t)
	stop = mustRun(t, td3)
	sess = loginCookie(t, td3.base, td3.AccessToken())
	stop()
	if err := os.WriteFile(filepath.Join(td3.DataDir, TokenFile), []byte("a-rotated-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	td4 := newTestDashboard(t)
	td4.DataDir = td3.DataDir
	mustRun(t, td4)
	if td4.AccessToken() != "a-rotated-token-0123456789" {
		t.Fatalf("the rotated token file was not used")
	}
	if r := call(t, http.MethodGet, td4.base+"/api/bots", cookieHdr(sess), nil); r.code != http.StatusUnauthorized {
		t.Errorf("cookie from the old token file: HTTP %d", r.code)
	}
	getSession(t, td4, cookieHdr(loginCookie(t, td4.base, td4.AccessToken())))
}

// TestShortTokenRefused: a given token under 16 characters stops Open; no
// listener is bound and the message does not show the token.
func TestShortTokenRefused(t *testing.T) {
	for _, tok := range []string{"s3cret", "fifteen-chars-x"} {
		td := newTestDashboard(t)
		td.Token = tok
		err := td.Open()
		if err == nil {
			td.Close()
			t.Fatalf("token %q accepted", tok)
		}
		if !errors.Is(err, ErrTokenTooShort) || !strings.Contains(err.Error(), "shorter than 16") || strings.Contains(err.Error(), tok) || td.Addr() != "" {
			t.Errorf("token %q: %v (addr %q)", tok, err, td.Addr())
		}
	}
	if err := CheckToken("sixteen-chars-xx"); err != nil {
		t.Errorf("16 characters refused: %v", err)
	}
}

// openRawStream opens /api/stream with hdr and returns the answer; the
// body stays open until ctx ends or the test does.
func openRawStream(ctx context.Context, t *testing.T, base string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestStreamCap: a session holds at most session.MaxStreamsPerSession live streams
// and a Bearer token session.MaxStreamsPerBearer; the next gets 429 with a JSON
// error, while another session still gets its own.
func TestStreamCap(t *testing.T) {
	td := startDashboard(t)
	for _, tc := range []struct {
		what  string
		hdr   map[string]string
		limit int
	}{
		{"session", cookieHdr(loginCookie(t, td.base, td.AccessToken())), session.MaxStreamsPerSession},
		{"bearer", bearer(td.AccessToken()), session.MaxStreamsPerBearer},
	} {
		for i := range tc.limit {
			if resp := openRawStream(t.Context(), t, td.base, tc.hdr); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s stream %d: HTTP %d", tc.what, i+1, resp.StatusCode)
			}
		}
		resp := openRawStream(t.Context(), t, td.base, tc.hdr)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s stream %d: HTTP %d, want 429", tc.what, tc.limit+1, resp.StatusCode)
		}
		if msg := (response{code: resp.StatusCode, body: body}).errorText(t); !strings.Contains(msg, "too many live streams") {
			t.Errorf("429 error %q", msg)
		}
	}
	if resp := openRawStream(t.Context(), t, td.base, cookieHdr(loginCookie(t, td.base, td.ViewerAccessToken()))); resp.StatusCode != http.StatusOK {
		t.Errorf("another session's stream: HTTP %d", resp.StatusCode)
	}
}
