package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/dashboard/session"
)

// viewerRoutes lists every route under /api/ the app serves, with :name
// filled in, split into reads and writes, so a route added later is covered
// without touching this test. The stream is left out of reads: it never
// ends, so checkViewerStream opens it separately.
func viewerRoutes(t *testing.T, td *testDashboard, bot string) (reads, writes []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range td.app.GetRoutes(true) {
		if !strings.HasPrefix(r.Path, "/api/") || r.Path == "/api/stream" ||
			strings.Contains(r.Path, "/logs") { // operators only: TestViewerCannotReadLogs
			continue
		}
		p := strings.ReplaceAll(r.Path, ":name", bot)
		if strings.ContainsAny(p, ":*") {
			t.Fatalf("route %s has a parameter this test cannot fill", r.Path)
		}
		key := r.Method + " " + p
		if seen[key] {
			continue
		}
		seen[key] = true
		switch r.Method {
		case http.MethodGet:
			reads = append(reads, p)
		case http.MethodHead, http.MethodOptions:
		default:
			writes = append(writes, r.Method+" "+p)
		}
	}
	slices.Sort(reads)
	slices.Sort(writes)
	for _, want := range []string{"/api/session", "/api/bots", "/api/events", "/api/bots/" + bot} {
		if !slices.Contains(reads, want) {
			t.Fatalf("GET %s is not among the routes %v", want, reads)
		}
	}
	if len(writes) < 4 {
		t.Fatalf("only %d write routes: %v", len(writes), writes)
	}
	return reads, writes
}

// checkViewerStream opens /api/stream with hdr and wants it to flow.
func checkViewerStream(t *testing.T, td *testDashboard, hdr map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp := openRawStream(ctx, t, td.base, hdr)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: HTTP %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	if n == 0 {
		t.Fatalf("stream sent nothing: %v", err)
	}
}

// wantViewerRefusal checks r is the 403 every viewer write gets.
func wantViewerRefusal(t *testing.T, what string, r response) {
	t.Helper()
	if r.code != http.StatusForbidden {
		t.Errorf("%s: HTTP %d, want 403: %s", what, r.code, r.body)
		return
	}
	if msg := r.errorText(t); msg != errViewerWrite {
		t.Errorf("%s: error %q, want %q", what, msg, errViewerWrite)
	}
}

func sessionCookie(t *testing.T, r response) string {
	t.Helper()
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookie && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("no session cookie in %v", r.header.Values("Set-Cookie"))
	return ""
}

func getSession(t *testing.T, td *testDashboard, hdr map[string]string) sessionInfo {
	t.Helper()
	r := call(t, http.MethodGet, td.base+"/api/session", hdr, nil)
	if r.code != http.StatusOK {
		t.Fatalf("session: HTTP %d %s", r.code, r.body)
	}
	var info sessionInfo
	r.json(t, &info)
	return info
}

func TestViewerBearer(t *testing.T) {
	td := startDashboard(t)
	agent := startFakeAgent(t, connect(t, td), "bot")
	viewer := td.ViewerAccessToken()
	if viewer == "" || viewer == td.AccessToken() {
		t.Fatalf("viewer token empty or equal to the access token")
	}
	hdr := bearer(viewer)

	if info := getSession(t, td, hdr); info.Role != "viewer" || info.Auth != "bearer" || info.CSRFToken != "" {
		t.Errorf("viewer session %+v", info)
	}
	reads, writes := viewerRoutes(t, td, "bot")
	for _, p := range reads {
		if r := call(t, http.MethodGet, td.base+p, hdr, nil); r.code != http.StatusOK {
			t.Errorf("viewer GET %s: HTTP %d %s", p, r.code, r.body)
		}
	}
	checkViewerStream(t, td, hdr)

	for _, w := range writes {
		method, p, _ := strings.Cut(w, " ")
		for _, body := range []string{"", "{}"} {
			wantViewerRefusal(t, "viewer "+w, call(t, method, td.base+p, hdr, strings.NewReader(body)))
		}
	}
	// Refused before routing, too: a viewer learns nothing from writes.
	wantViewerRefusal(t, "viewer POST to no route", call(t, http.MethodPost, td.base+"/api/no-such-route", hdr, nil))
	if cmds := agent.commands(); len(cmds) != 0 {
		t.Fatalf("viewer commands reached the agent: %+v", cmds)
	}

	// The operator's token is unchanged.
	op := bearer(td.AccessToken())
	if info := getSession(t, td, op); info.Role != "operator" || info.Auth != "bearer" {
		t.Errorf("operator session %+v", info)
	}
	if r := call(t, http.MethodPost, td.base+"/api/bot/restart", op, nil); r.code != http.StatusOK {
		t.Fatalf("operator restart: HTTP %d %s", r.code, r.body)
	}
	if cmds := agent.commands(); len(cmds) != 1 {
		t.Errorf("agent got %d commands, want 1", len(cmds))
	}
}

func TestViewerCookieLogin(t *testing.T) {
	td := startDashboard(t)
	agent := startFakeAgent(t, connect(t, td), "bot")
	viewer := td.ViewerAccessToken()
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

	logins := map[string]response{
		"GET":  call(t, http.MethodGet, td.base+"/login?token="+url.QueryEscape(viewer), nil, nil),
		"POST": call(t, http.MethodPost, td.base+"/login", form, strings.NewReader("token="+url.QueryEscape(viewer))),
	}
	for how, r := range logins {
		if r.code != http.StatusSeeOther || r.header.Get("Location") != "/" {
			t.Fatalf("%s login: HTTP %d Location %q", how, r.code, r.header.Get("Location"))
		}
		sess := sessionCookie(t, r)
		if strings.Contains(sess, viewer) {
			t.Errorf("cookie carries the viewer token")
		}
		cookie := map[string]string{"Cookie": SessionCookie + "=" + sess}
		info := getSession(t, td, cookie)
		if info.Role != "viewer" || info.Auth != "cookie" || info.CSRFToken != "" {
			t.Errorf("%s login: session %+v", how, info)
		}
		reads, writes := viewerRoutes(t, td, "bot")
		for _, p := range reads {
			if r := call(t, http.MethodGet, td.base+p, cookie, nil); r.code != http.StatusOK {
				t.Errorf("viewer cookie GET %s: HTTP %d %s", p, r.code, r.body)
			}
		}
		checkViewerStream(t, td, cookie)
		// A CSRF token, however obtained, does not make a viewer an operator.
		csrfs := map[string]string{
			"none":               "",
			"viewer-keyed":       session.NewViewerKeys(viewer).CSRF(sess),
			"operator-keyed":     session.NewKeys(td.AccessToken()).CSRF(sess),
			"operator session's": session.NewKeys(td.AccessToken()).CSRF(session.NewKeys(td.AccessToken()).New(time.Now())),
		}
		for name, csrf := range csrfs {
			for _, w := range writes {
				method, p, _ := strings.Cut(w, " ")
				hdr := map[string]string{"Cookie": cookie["Cookie"]}
				if csrf != "" {
					hdr[CSRFHeader] = csrf
				}
				wantViewerRefusal(t, how+" login, "+name+" CSRF, "+w, call(t, method, td.base+p, hdr, nil))
			}
		}
	}
	if cmds := agent.commands(); len(cmds) != 0 {
		t.Fatalf("viewer cookie commands reached the agent: %+v", cmds)
	}
	if logs := td.logs.String(); strings.Contains(logs, viewer) || !strings.Contains(logs, "role=viewer") {
		t.Errorf("logs hold the viewer token or do not name the role:\n%s", logs)
	}

	// An operator's cookie login still commands.
	r := call(t, http.MethodGet, td.base+"/login?token="+url.QueryEscape(td.AccessToken()), nil, nil)
	cookie := map[string]string{"Cookie": SessionCookie + "=" + sessionCookie(t, r)}
	info := getSession(t, td, cookie)
	if info.Role != "operator" || info.CSRFToken == "" {
		t.Fatalf("operator session %+v", info)
	}
	cookie[CSRFHeader] = info.CSRFToken
	if r := call(t, http.MethodPost, td.base+"/api/bots/bot/stop", cookie, nil); r.code != http.StatusOK {
		t.Fatalf("operator stop: HTTP %d %s", r.code, r.body)
	}
	if cmds := agent.commands(); len(cmds) != 1 {
		t.Errorf("agent got %d commands, want 1", len(cmds))
	}
}

// TestViewerSessionNotOperator: a viewer's cookie is signed with other keys
// and another label than an operator's, so no viewer cookie, replayed or
// recombined, passes for an operator session.
func TestViewerSessionNotOperator(t *testing.T) {
	now := time.Now()
	for _, tok := range []string{"the-same-token-for-both", "another-token-0123456"} {
		op, vw := session.NewKeys(tok), session.NewViewerKeys(tok)
		if op.OK(vw.New(now), now) {
			t.Errorf("a viewer session validates as an operator session (same token %q)", tok)
		}
		if vw.OK(op.New(now), now) {
			t.Errorf("an operator session validates as a viewer session")
		}
		if op.CSRF("v1.1.x") == vw.CSRF("v1.1.x") {
			t.Errorf("operator and viewer CSRF tokens coincide")
		}
	}

	td := startDashboard(t)
	agent := startFakeAgent(t, connect(t, td), "bot")
	viewer := td.ViewerAccessToken()
	r := call(t, http.MethodGet, td.base+"/login?token="+url.QueryEscape(viewer), nil, nil)
	sess := sessionCookie(t, r)
	if td.keys.OK(sess, time.Now()) {
		t.Fatal("the dashboard's operator keys accept a viewer cookie")
	}
	// Re-dated with the viewer's MAC kept, the cookie is nobody's.
	ver, rest, _ := strings.Cut(sess, ".")
	_, mac, _ := strings.Cut(rest, ".")
	forged := ver + "." + "1" + "." + mac
	if r := call(t, http.MethodGet, td.base+"/api/session", map[string]string{"Cookie": SessionCookie + "=" + forged}, nil); r.code != http.StatusUnauthorized {
		t.Errorf("re-dated viewer cookie: HTTP %d, want 401", r.code)
	}

	// A viewer Bearer token wins over an operator cookie sent alongside: the
	// Bearer header decides, so the viewer stays a viewer.
	lr := call(t, http.MethodGet, td.base+"/login?token="+url.QueryEscape(td.AccessToken()), nil, nil)
	opSession := sessionCookie(t, lr)
	hdr := map[string]string{
		"Authorization": "Bearer " + viewer,
		"Cookie":        SessionCookie + "=" + opSession,
		CSRFHeader:      td.keys.CSRF(opSession),
	}
	if info := getSession(t, td, hdr); info.Role != "viewer" {
		t.Errorf("viewer Bearer with operator cookie: role %q", info.Role)
	}
	wantViewerRefusal(t, "viewer Bearer with operator cookie", call(t, http.MethodPost, td.base+"/api/bot/restart", hdr, nil))
	// And a viewer cookie with the operator's CSRF token of another session
	// is still only a viewer.
	hdr = map[string]string{"Cookie": SessionCookie + "=" + sess, CSRFHeader: td.keys.CSRF(opSession)}
	wantViewerRefusal(t, "viewer cookie with operator CSRF", call(t, http.MethodPost, td.base+"/api/bot/restart", hdr, nil))
	if cmds := agent.commands(); len(cmds) != 0 {
		t.Fatalf("viewer requests reached the agent: %+v", cmds)
	}
}

func TestViewerTokenFile(t *testing.T) {
	td := newTestDashboard(t)
	if err := td.Open(); err != nil {
		t.Fatalf("open: %v", err)
	}
	viewer := td.ViewerAccessToken()
	if len(viewer) != 64 || viewer == td.AccessToken() {
		t.Errorf("viewer token: length %d, equal to access token %v", len(viewer), viewer == td.AccessToken())
	}
	for _, name := range []string{TokenFile, ViewerTokenFile} {
		path := filepath.Join(td.DataDir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		want := td.AccessToken()
		if name == ViewerTokenFile {
			want = viewer
		}
		if strings.TrimSpace(string(data)) != want {
			t.Errorf("%s holds another token", name)
		}
		if runtime.GOOS != "windows" {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s mode %v, want 0600", name, perm)
			}
		}
	}
	out := td.out.String()
	if !strings.Contains(out, filepath.Join(td.DataDir, ViewerTokenFile)) {
		t.Errorf("banner does not name the viewer token file:\n%s", out)
	}
	if strings.Contains(out, viewer) {
		t.Errorf("banner prints the viewer token")
	}
	if strings.Contains(td.logs.String(), viewer) {
		t.Errorf("the viewer token appears in the logs")
	}
	if err := td.Close(); err != nil {
		t.Fatal(err)
	}

	// The same data dir keeps the viewer token.
	td2 := newTestDashboard(t)
	td2.DataDir = td.DataDir
	if err := td2.Open(); err != nil {
		t.Fatalf("open again: %v", err)
	}
	if td2.ViewerAccessToken() != viewer {
		t.Errorf("viewer token changed across restarts")
	}
	td2.Close()

	// Garbage in the file is replaced, not trusted.
	td3 := newTestDashboard(t)
	if err := os.WriteFile(filepath.Join(td3.DataDir, ViewerTokenFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := td3.Open(); err != nil {
		t.Fatalf("open with garbage viewer file: %v", err)
	}
	if v := td3.ViewerAccessToken(); v == "short" || len(v) != 64 {
		t.Errorf("garbage viewer token file was trusted")
	}
	td3.Close()
}

func TestViewerTokenGiven(t *testing.T) {
	td := newTestDashboard(t)
	td.ViewerToken = "given-viewer-token-0123"
	if err := td.Open(); err != nil {
		t.Fatalf("open: %v", err)
	}
	defer td.Close()
	if td.ViewerAccessToken() != td.ViewerToken {
		t.Errorf("ViewerAccessToken() is not the given token")
	}
	if _, err := os.Stat(filepath.Join(td.DataDir, ViewerTokenFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("viewer token file written although a token was given: %v", err)
	}
	if strings.Contains(td.out.String(), td.ViewerToken) || strings.Contains(td.logs.String(), td.ViewerToken) {
		t.Errorf("the given viewer token was printed")
	}
}

// TestViewerTokenMustDiffer: a viewer token equal to the access token would
// make every viewer an operator, so Open refuses it.
func TestViewerTokenMustDiffer(t *testing.T) {
	td := newTestDashboard(t)
	td.Token = "one-token-for-everyone-0123"
	td.ViewerToken = td.Token
	err := td.Open()
	if err == nil {
		td.Close()
		t.Fatal("Open accepted a viewer token equal to the access token")
	}
	if strings.Contains(err.Error(), td.Token) {
		t.Errorf("error shows the token: %v", err)
	}

	td2 := newTestDashboard(t)
	td2.Token = "one-token-for-everyone-0123"
	if err := os.WriteFile(filepath.Join(td2.DataDir, ViewerTokenFile), []byte(td2.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = td2.Open()
	if err == nil {
		td2.Close()
		t.Fatal("Open accepted a viewer token file holding the access token")
	}
	if !strings.Contains(err.Error(), ViewerTokenFile) || strings.Contains(err.Error(), td2.Token) {
		t.Errorf("error %v", err)
	}

	for _, bad := range []string{"has space-0123456789", strings.Repeat("x", maxTokenLen+1)} {
		td := newTestDashboard(t)
		td.ViewerToken = bad
		if err := td.Open(); err == nil {
			td.Close()
			t.Errorf("Open accepted viewer token %.20q", bad)
		} else if te := (*TokenError)(nil); !errors.As(err, &te) || !te.Viewer {
			t.Errorf("error is not the viewer token's: %v", err)
		}
	}
}
