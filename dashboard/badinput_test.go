package dashboard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/session"
	"github.com/nats-io/nats.go"
)

// busSpy records every restart, stop and start request that reaches an
// agent subject on the bus, whether or not an agent answers it. A plain
// subscriber would turn the bus's instant "no responders" for a bot without
// an agent into a timeout, so for every bot but answered the spy sends that
// same answer itself (a "Status: 503" header and no data).
type busSpy struct {
	mu       sync.Mutex
	subjects []string
	statuses map[string]int // status requests by bot name
}

func startSpy(t *testing.T, nc *nats.Conn, answered string) *busSpy {
	t.Helper()
	s := &busSpy{statuses: map[string]int{}}
	_, err := nc.Subscribe("lifeline.agent.*.*", func(m *nats.Msg) {
		// Recorded before answering: once the dashboard has its answer,
		// the request is on the record.
		s.mu.Lock()
		if strings.HasSuffix(m.Subject, "."+bus.OpStatus) { // the dashboard polls status on its own
			s.statuses[bus.NameFromSubject(m.Subject)]++
		} else {
			s.subjects = append(s.subjects, m.Subject)
		}
		s.mu.Unlock()
		if bus.NameFromSubject(m.Subject) != answered {
			m.RespondMsg(&nats.Msg{Header: nats.Header{"Status": []string{"503"}}})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

// since returns the subjects recorded after the first n.
func (s *busSpy) since(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.subjects[n:])
}

func (s *busSpy) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subjects)
}

// asked returns how many status requests for bot name went out.
func (s *busSpy) asked(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statuses[name]
}

// waitAskersIdle waits until td's watcher has no status request queued or
// under way. A refresh that a request caused is queued before its answer
// goes out, so once they are idle, its outcome is recorded.
func waitAskersIdle(t *testing.T, td *testDashboard) {
	t.Helper()
	w := td.Dashboard.watch
	waitFor(t, "no status request queued or under way", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.askers == 0
	})
}

// world is what the dashboard shows of every bot and event: what a refused
// request must leave exactly as it was.
type world struct {
	bots   string
	events string
	bad    int64
}

func look(t *testing.T, td *testDashboard) world {
	t.Helper()
	var list botList
	r := call(t, http.MethodGet, td.base+"/api/bots", bearer(td.AccessToken()), nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET /api/bots: HTTP %d %s", r.code, r.body)
	}
	r.json(t, &list)
	for i := range list.Bots {
		list.Bots[i].HeartbeatAgeMS = nil // grows by itself
	}
	bots, _ := json.Marshal(list.Bots)
	events := call(t, http.MethodGet, td.base+"/api/events", bearer(td.AccessToken()), nil)
	return world{bots: string(bots), events: string(events.body), bad: list.BadMessages}
}

// login returns a session cookie header and its CSRF token.
func login(t *testing.T, td *testDashboard) (cookie, csrf string) {
	t.Helper()
	r := call(t, http.MethodGet, td.base+"/login?token="+td.AccessToken(), nil, nil)
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookie {
			cookie = SessionCookie + "=" + c.Value
		}
	}
	if cookie == "" {
		t.Fatalf("login: HTTP %d, no session cookie", r.code)
	}
	var info sessionInfo
	call(t, http.MethodGet, td.base+"/api/session", map[string]string{"Cookie": cookie}, nil).json(t, &info)
	if info.CSRFToken == "" {
		t.Fatalf("no CSRF token for the session")
	}
	return cookie, info.CSRFToken
}

// rawCall sends a request that announces a body of length bytes and sends
// none: an oversized body must be refused from the header alone (a client
// writing it would race the server closing the connection).
func rawCall(t *testing.T, addr, method, path string, hdr map[string]string, length int) response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", method, path, length)
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: data}
}

// badRequest is one row of TestBadHTTPInput.
type badRequest struct {
	name         string
	method, path string
	auth         string // a key of the auths map in TestBadHTTPInput
	hdr          map[string]string
	body         string
	announce     int // > 0: announce a body this long and send none
	code         int
	errText      string // the error must contain this
	reaches      string // the one subject the request may reach on the bus
}

var (
	postRoutes = []string{"/api/bot/restart", "/api/bots/bot/restart", "/api/bots/bot/stop", "/api/bots/bot/start"}
	getRoutes  = []string{"/api/session", "/api/bot/status", "/api/bots", "/api/bots/bot", "/api/events", "/api/stream"}
)

const (
	errToken   = "missing or wrong token"
	errCSRF    = "missing or wrong CSRF token"
	errBody    = "request body must be empty or {}"
	errName    = "bot name must be 1-64 characters"
	errMethod  = "not allowed on"
	errTooBig  = "request body larger than 64 KiB"
	errNoRoute = "no such route"
)

// badRequests is every kind of bad input on every route: each row must be
// refused with its status code and a JSON error, reach no agent and change
// nothing.
func badRequests() []badRequest {
	var rows []badRequest
	add := func(r badRequest) { rows = append(rows, r) }

	// Malformed and unwanted bodies, with either kind of authentication.
	deep := `{"a":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`
	bodies := map[string]string{
		"garbage":              "garbage",
		"truncated":            `{"requested_by":"x"`,
		"wrong type":           `{"requested_by":5}`,
		"requested_by":         `{"requested_by":"mallory"}`,
		"unknown field":        `{"unknown":1}`,
		"array":                `[]`,
		"null":                 `null`,
		"string":               `"{}"`,
		"number":               `0`,
		"two objects":          `{}{}`,
		"trailing garbage":     `{} x`,
		"deeply nested":        deep,
		"invalid utf-8":        "{\"\xff\":1}",
		"nul byte":             "{\x00}",
		"near the limit":       strings.Repeat("x", bodyLimit),
		"near the limit, json": `{"pad":"` + strings.Repeat("x", bodyLimit-10) + `"}`,
		"form":                 "requested_by=mallory",
	}
	for _, path := range postRoutes {
		for _, auth := range []string{"bearer", "cookie+csrf"} {
			for name, body := range bodies {
				add(badRequest{name: name + " body", method: http.MethodPost, path: path, auth: auth,
					body: body, code: http.StatusBadRequest, errText: errBody})
			}
		}
	}

	// Oversized bodies, on every route: refused before any handler runs.
	for _, path := range append(slices.Clone(postRoutes), getRoutes...) {
		method := http.MethodPost
		if slices.Contains(getRoutes, path) {
			method = http.MethodGet
		}
		for _, n := range []int{bodyLimit + 1, 1 << 30} {
			add(badRequest{name: fmt.Sprintf("%d byte body", n), method: method, path: path, auth: "bearer",
				announce: n, code: http.StatusRequestEntityTooLarge, errText: errTooBig})
		}
	}

	// Unknown bots: asked about on the bus (only an agent can say it is
	// there), never added to the dashboard's list.
	add(badRequest{name: "unknown bot", method: http.MethodGet, path: "/api/bots/ghost", auth: "bearer",
		code: http.StatusNotFound, errText: `unknown bot "ghost"`})
	for _, op := range []string{bus.OpRestart, bus.OpStop, bus.OpStart} {
		add(badRequest{name: "unknown bot", method: http.MethodPost, path: "/api/bots/ghost/" + op, auth: "bearer",
			code: http.StatusServiceUnavailable, errText: `no agent is supervising bot "ghost"`,
			reaches: bus.AgentSubject("ghost", op)})
	}

	// Bad names, as they appear in the URL.
	for _, name := range []string{
		"bad.name", "a*", "*", "%3E", "bot%3E", strings.Repeat("x", 65), "%C3%A9", "b%C3%B6t", "%F0%9F%A4%96",
		"..%2Fbot", "%2e%2e%2fbot", "..%5Cbot", "bot%00", "bot%20", "%20bot", "bot%0A", "bot%0D%0AX-Evil:%201",
		"bot;x", "bot%2Fstop", "lifeline.agent.bot", "%24SRV", "%22bot%22", "%3Cscript%3E",
	} {
		add(badRequest{name: "bad name " + name, method: http.MethodGet, path: "/api/bots/" + name, auth: "bearer",
			code: http.StatusBadRequest, errText: errName})
		for _, op := range []string{bus.OpRestart, bus.OpStop, bus.OpStart} {
			add(badRequest{name: "bad name " + name, method: http.MethodPost, path: "/api/bots/" + name + "/" + op,
				auth: "bearer", code: http.StatusBadRequest, errText: errName})
		}
	}
	// Paths that try to climb out of a name: no route, nothing done.
	for _, path := range []string{
		"/api/bots/%2E%2E/bot/restart", "/api/bots/x/../../bot/restart", "/api/bots//restart",
		"/api//bots/bot/restart", "/api/bots/bot/restart/x", "/api/bots/bot/explode",
	} {
		add(badRequest{name: "path trick", method: http.MethodPost, path: path, auth: "bearer",
			code: http.StatusNotFound, errText: errNoRoute})
	}

	// Wrong methods.
	for _, path := range postRoutes {
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, http.MethodTrace} {
			add(badRequest{name: "wrong method", method: m, path: path, auth: "bearer",
				code: http.StatusMethodNotAllowed, errText: errMethod})
		}
		add(badRequest{name: "unknown method", method: "EXPLODE", path: path, auth: "bearer",
			code: http.StatusNotImplemented, errText: "not implemented"})
	}
	for _, path := range getRoutes {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			add(badRequest{name: "wrong method", method: m, path: path, auth: "bearer",
				code: http.StatusMethodNotAllowed, errText: errMethod})
		}
	}

	// Missing or wrong token: nothing else is looked at, not even a bad
	// name or body.
	for _, path := range append(slices.Clone(postRoutes), "/api/bots/bad.name/restart") {
		for _, auth := range []string{"none", "wrong bearer", "empty bearer", "basic", "raw token", "token in query",
			"bearer with more", "forged cookie", "token as cookie", "other token's session", "cookie, wrong bearer"} {
			add(badRequest{name: "token " + auth, method: http.MethodPost, path: path, auth: auth,
				code: http.StatusUnauthorized, errText: errToken})
			add(badRequest{name: "token " + auth + ", bad body", method: http.MethodPost, path: path, auth: auth,
				body: "garbage", code: http.StatusUnauthorized, errText: errToken})
		}
	}

	// The session cookie without the right CSRF token.
	for _, path := range postRoutes {
		for _, auth := range []string{"cookie", "cookie+wrong csrf", "cookie+empty csrf", "cookie+other session's csrf",
			"cookie+csrf in query", "cookie+token as csrf"} {
			add(badRequest{name: auth, method: http.MethodPost, path: path, auth: auth,
				code: http.StatusForbidden, errText: errCSRF})
			add(badRequest{name: auth + ", body {}", method: http.MethodPost, path: path, auth: auth,
				body: "{}", code: http.StatusForbidden, errText: errCSRF})
		}
	}
	// The routes outside /api need no token and refuse the same way.
	for _, r := range [][2]string{
		{http.MethodPost, "/healthz"}, {http.MethodPut, "/"}, {http.MethodDelete, "/static/app.js"},
		{http.MethodPut, "/logout"}, {http.MethodPut, "/login"}, {http.MethodDelete, "/login"},
	} {
		add(badRequest{name: "wrong method", method: r[0], path: r[1], auth: "none",
			code: http.StatusMethodNotAllowed, errText: errMethod})
	}
	for _, path := range []string{"/healthz", "/", "/login"} {
		add(badRequest{name: "unknown method", method: "EXPLODE", path: path, auth: "none",
			code: http.StatusNotImplemented, errText: "not implemented"})
	}
	for _, path := range []string{"/static/..%2Fhttp.go", "/static/%2e%2e/%2e%2e/go.mod", "/static/../../go.mod",
		"/static/", "/static/%00", "/static/.", "/static/index.html", "/static/nope.js"} {
		add(badRequest{name: "static path trick", method: http.MethodGet, path: path, auth: "none",
			code: http.StatusNotFound, errText: errNoRoute})
	}
	add(badRequest{name: "oversized login", method: http.MethodPost, path: "/login", auth: "none",
		announce: bodyLimit + 1, code: http.StatusRequestEntityTooLarge, errText: errTooBig})
	add(badRequest{name: "malformed multipart login", method: http.MethodPost, path: "/login", auth: "none",
		hdr: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, body: "garbage",
		code: http.StatusBadRequest, errText: "multipart"})
	return rows
}

// TestBadHTTPInput sends every row of badRequests to a real dashboard with a
// real agent service on its bus, and checks that each is refused with the
// right status and a JSON error, that no command reached any agent, and that
// what the dashboard shows did not change.
func TestBadHTTPInput(t *testing.T) {
	td := startDashboard(t)
	nc := connect(t, td)
	agent := startFakeAgent(t, nc, "bot")
	spy := startSpy(t, connect(t, td), "bot") // its own login: a connection answers a request once
	cookie, csrf := login(t, td)
	token := td.AccessToken()
	otherSession := SessionCookie + "=" + session.NewKeys("some-other-token-123456").New(time.Now())
	auths := map[string]map[string]string{
		"bearer":                      bearer(token),
		"cookie+csrf":                 {"Cookie": cookie, CSRFHeader: csrf},
		"none":                        nil,
		"wrong bearer":                bearer(token + "x"),
		"empty bearer":                {"Authorization": "Bearer "},
		"basic":                       {"Authorization": "Basic " + token},
		"raw token":                   {"Authorization": token},
		"token in query":              nil, // see below
		"bearer with more":            {"Authorization": "Bearer " + token + " " + token},
		"forged cookie":               {"Cookie": SessionCookie + "=v1.1.abc"},
		"token as cookie":             {"Cookie": SessionCookie + "=" + token},
		"other token's session":       {"Cookie": otherSession},
		"cookie, wrong bearer":        {"Cookie": cookie, CSRFHeader: csrf, "Authorization": "Bearer wrong"},
		"cookie":                      {"Cookie": cookie},
		"cookie+wrong csrf":           {"Cookie": cookie, CSRFHeader: csrf + "x"},
		"cookie+empty csrf":           {"Cookie": cookie, CSRFHeader: " "},
		"cookie+other session's csrf": {"Cookie": cookie, CSRFHeader: session.NewKeys(token).CSRF("v1.1.x")},
		"cookie+csrf in query":        {"Cookie": cookie},
		"cookie+token as csrf":        {"Cookie": cookie, CSRFHeader: token},
	}
	waitFor(t, "the agent's status in /api/bots", func() bool {
		return strings.Contains(look(t, td).bots, `"connected":true`)
	})
	before := look(t, td)

	for _, row := range badRequests() {
		auth, ok := auths[row.auth]
		if !ok {
			t.Fatalf("row %q: no auth %q", row.name, row.auth)
		}
		hdr := maps.Clone(auth)
		if hdr == nil {
			hdr = map[string]string{}
		}
		maps.Copy(hdr, row.hdr)
		path := row.path
		switch row.auth {
		case "token in query":
			path += "?token=" + token
		case "cookie+csrf in query":
			path += "?csrf=" + csrf + "&" + CSRFHeader + "=" + csrf
		}
		t.Run(row.method+" "+row.path+" "+row.auth+" "+row.name, func(t *testing.T) {
			n, cmds := spy.count(), len(agent.commands())
			var r response
			if row.announce > 0 {
				r = rawCall(t, td.Addr(), row.method, path, hdr, row.announce)
			} else {
				var body io.Reader
				if row.body != "" {
					body = strings.NewReader(row.body)
				}
				r = call(t, row.method, td.base+path, hdr, body)
			}
			if r.code != row.code {
				t.Fatalf("HTTP %d, want %d: %.300s", r.code, row.code, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("security headers missing")
			}
			if msg := r.errorText(t); !strings.Contains(msg, row.errText) {
				t.Errorf("error %q, want it to contain %q", msg, row.errText)
			}
			// The dashboard answers before its background refresh, so give
			// a stray request time to show up on the bus.
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			got := spy.since(n)
			if want := []string{row.reaches}; row.reaches != "" && !slices.Equal(got, want) || row.reaches == "" && len(got) != 0 {
				t.Errorf("requests on the bus %q, want %q", got, row.reaches)
			}
			if got := agent.commands(); len(got) != cmds {
				t.Errorf("the agent got %+v", got[cmds:])
			}
		})
	}
	if cmds := agent.commands(); len(cmds) != 0 {
		t.Errorf("the agent got %d commands", len(cmds))
	}

	// A command sent on refreshes its bot's status in the background, after
	// answering: those answers recorded, nothing may have changed.
	waitAskersIdle(t, td)
	if n := spy.asked("ghost"); n == 0 {
		t.Errorf("the commands to ghost were not followed by a status request")
	}
	if after := look(t, td); after != before {
		t.Errorf("bad requests changed what the dashboard shows:\nbefore %+v\n after %+v", before, after)
	}
	if got := spy.since(0); len(got) != 3 { // the three ghost commands
		t.Errorf("requests on the bus: %q", got)
	}
}

// TestGoodCommandBodies is the control for TestBadHTTPInput: the same
// dashboard, agent and spy accept what a client may send, so the refusals
// above are not an artefact of the test's setup.
func TestGoodCommandBodies(t *testing.T) {
	td := startDashboard(t)
	nc := connect(t, td)
	agent := startFakeAgent(t, nc, "bot")
	spy := startSpy(t, connect(t, td), "bot") // its own login: a connection answers a request once
	cookie, csrf := login(t, td)
	auths := []map[string]string{
		bearer(td.AccessToken()),
		{"Authorization": "bearer  " + td.AccessToken() + " "},
		{"Cookie": cookie, CSRFHeader: csrf},
	}
	want := 0
	for _, path := range postRoutes {
		for _, hdr := range auths {
			for _, body := range []string{"", "{}", " { }\r\n"} {
				var rd io.Reader
				if body != "" {
					rd = strings.NewReader(body)
				}
				r := call(t, http.MethodPost, td.base+path, hdr, rd)
				if r.code != http.StatusOK {
					t.Errorf("POST %s body %q: HTTP %d %s", path, body, r.code, r.body)
				}
				want++
			}
		}
	}
	if got := len(agent.commands()); got != want {
		t.Errorf("the agent got %d commands, want %d", got, want)
	}
	// The spy hears a command to an answered bot beside its agent, not
	// before it, so it may still be catching up.
	waitFor(t, fmt.Sprintf("the spy to see %d commands", want), func() bool { return spy.count() >= want })
	if got := spy.count(); got != want {
		t.Errorf("the spy saw %d commands, want %d", got, want)
	}
}

// TestBadBusMessages publishes bad heartbeats and events on the subjects the
// dashboard follows: each is counted as bad and ignored, and no bot appears
// or changes.
func TestBadBusMessages(t *testing.T) {
	td := startDashboard(t)
	nc := connect(t, td)
	startFakeAgent(t, nc, "bot")
	waitFor(t, "the agent's status in /api/bots", func() bool {
		return strings.Contains(look(t, td).bots, `"connected":true`)
	})
	before := look(t, td)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	hb := func(fields string) string {
		return `{"host":"h","time":"` + now + `","started_at":"` + now + `",` + fields + `}`
	}
	payloads := []string{
		"", "garbage", "null", "[]", "5", `"bot"`, "{", "\xff\xfe",
		hb(`"name":"bot","pid":"4242"`),
		hb(`"name":"bot","pid":4242,"seq":-1`),
		hb(`"name":"bot","pid":4242,"time":"yesterday"`),
		hb(`"name":5,"pid":4242`),
		hb(`"name":"bot","pid":0`),
		hb(`"name":"bot","pid":-1`),
		hb(`"name":"bot","pid":99999999999999999999`),
		hb(`"name":"bot","pid":4242,"seq":99999999999999999999`),
		hb(`"name":"other","pid":4242`), // bot's subject, another bot's name
		hb(`"name":"bad.name","pid":4242`),
		hb(`"name":"bot","pid":4242,"stats":{"x":"y"}`),
		hb(`"name":"bot","pid":4242,"stats":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`),
		hb(`"name":"bot","pid":4242,"host":"` + strings.Repeat("x", 70<<10) + `"`), // above 64 KiB
		`{"time":"` + now + `","name":"other","type":"started"}`,
		`{"time":"` + now + `","name":"bot","pid":"x"}`,
		`{"time":"` + now + `","name":"","type":"started"}`,
	}
	for _, p := range payloads {
		for _, subject := range []string{bus.HeartbeatSubject("bot"), bus.EventsSubject("bot")} {
			if err := nc.Publish(subject, []byte(p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One just under the bus's payload limit, on each subject.
	big := hb(`"name":"bot","pid":4242,"host":"` + strings.Repeat("x", int(nc.MaxPayload())-1024) + `"`)
	for _, subject := range []string{bus.HeartbeatSubject("bot"), bus.EventsSubject("bot")} {
		if err := nc.Publish(subject, []byte(big)); err != nil {
			t.Fatal(err)
		}
	}
	// And one above it, which the client refuses to send at all.
	if err := nc.Publish(bus.HeartbeatSubject("bot"), make([]byte, nc.MaxPayload()+1)); err == nil {
		t.Errorf("publish above the bus's max payload succeeded")
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := before.bad + int64(2*len(payloads)+2)
	waitFor(t, "every bad message counted", func() bool { return look(t, td).bad == want })
	after := look(t, td)
	after.bad = before.bad
	if after != before {
		t.Errorf("bad messages changed what the dashboard shows:\nbefore %+v\n after %+v", before, after)
	}
	for _, name := range []string{"other", "bad.name"} {
		if r := call(t, http.MethodGet, td.base+"/api/bots/"+name, bearer(td.AccessToken()), nil); r.code/100 == 2 {
			t.Errorf("bot %q became known from garbage", name)
		}
	}
}

// TestBadLoginInput sends bad tokens and bad forms to /login: each gets the
// login page (or a JSON error for a body that is not a form) and never a
// session cookie, and nothing sent is echoed into the page.
func TestBadLoginInput(t *testing.T) {
	td := startDashboard(t)
	token := td.AccessToken()
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		body               string
	}{
		{"no token", http.MethodGet, "/login?token=", nil, ""},
		{"wrong token", http.MethodGet, "/login?token=wrong", nil, ""},
		{"bad escape", http.MethodGet, "/login?token=%zz", nil, ""},
		{"token and more", http.MethodGet, "/login?token=" + url.QueryEscape(token+" x"), nil, ""},
		{"token with nul", http.MethodGet, "/login?token=" + url.QueryEscape(token+"\x00"), nil, ""},
		{"markup", http.MethodGet, "/login?token=" + url.QueryEscape(`"><script>alert(1)</script>`), nil, ""},
		{"form, wrong token", http.MethodPost, "/login", form, "token=wrong"},
		{"form, bad escape", http.MethodPost, "/login", form, "token=%zz"},
		{"form, markup", http.MethodPost, "/login", form, "token=" + url.QueryEscape(`<script>alert(1)</script>`)},
		{"form, long token", http.MethodPost, "/login", form, "token=" + strings.Repeat("x", 60<<10)},
		{"form, token prefix", http.MethodPost, "/login", form, "token=" + token[:len(token)-1]},
		{"form, no field", http.MethodPost, "/login", form, "tok=" + token},
		{"json", http.MethodPost, "/login", map[string]string{"Content-Type": "application/json"}, `{"token":"` + token + `"}`},
		{"garbage", http.MethodPost, "/login", nil, "\xff\xfe garbage"},
		{"multipart garbage", http.MethodPost, "/login", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, "--x\r\ngarbage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := call(t, tc.method, td.base+tc.path, tc.hdr, body)
			if cookies := r.header.Values("Set-Cookie"); len(cookies) != 0 {
				t.Fatalf("HTTP %d set a cookie: %q", r.code, cookies)
			}
			switch ct := r.header.Get("Content-Type"); {
			case r.code == http.StatusBadRequest && strings.HasPrefix(ct, "application/json"):
				r.errorText(t)
			case slices.Contains([]int{http.StatusOK, http.StatusUnauthorized, http.StatusTooManyRequests}, r.code):
				if !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(r.body), `id="login-form"`) {
					t.Errorf("HTTP %d %q: %.200s", r.code, ct, r.body)
				}
				if strings.Contains(string(r.body), "<script") {
					t.Errorf("page carries markup from the request: %s", r.body)
				}
			default:
				t.Errorf("HTTP %d: %.200s", r.code, r.body)
			}
		})
	}
}
