package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/internal/joinlistener"
	"github.com/lifeline-dev/lifeline/dashboard/session"
	"github.com/lifeline-dev/lifeline/web"
)

// Names of the session cookie and the CSRF header.
const (
	SessionCookie = "lifeline_session"
	CSRFHeader    = "X-CSRF-Token"
)

// authKind says how a request proved it knows the token.
type authKind int

const (
	authNone authKind = iota
	authBearer
	authCookie
)

func (k authKind) String() string {
	switch k {
	case authBearer:
		return "bearer"
	case authCookie:
		return "cookie"
	}
	return "none"
}

// sessionStore is what the handlers ask of the state behind browser logins
// that a signed cookie cannot carry (a *session.Store): sessions ended by
// logout, one-time login links, and live-stream counts.
type sessionStore interface {
	Live(id string, issued int64) bool
	Revoke(id string, issued int64, now time.Time)
	NewLink(r session.Role, now time.Time) (code string, expires time.Time)
	UseLink(code string, now time.Time) (session.Role, bool)
	OpenStream(key string, limit int) bool
	CloseStream(key string)
}

// errViewerWrite answers every write a viewer attempts.
const errViewerWrite = "viewers may watch but not restart, stop or start bots"

type localsKey int

const (
	keyAuth localsKey = iota
	keySession
	keyRole
)

// apiError is the body of every error answer.
type apiError struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

func fail(c fiber.Ctx, code int, msg string) error {
	return c.Status(code).JSON(apiError{Error: msg})
}

// csp allows the page's own files only: no inline script or style, no
// other origin, no framing.
const csp = "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; object-src 'none'"

// hsts tells a browser that reached the dashboard over HTTPS to never try
// plain HTTP with it for a year, so no one on the path can strip TLS.
const hsts = "max-age=31536000"

// setSecurityHeaders sets the headers every answer carries; https says
// whether the browser's side is encrypted (see cameThroughHTTPS), the only
// case where HSTS may be sent.
func setSecurityHeaders(c fiber.Ctx, https bool) {
	if https {
		c.Set(fiber.HeaderStrictTransportSecurity, hsts)
	}
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("Content-Security-Policy", csp)
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set("Cross-Origin-Resource-Policy", "same-origin")
	c.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

// newApp builds the Fiber app, and the login state it serves (see
// session.Store). It deliberately has no request logger: login URLs carry a
// token or a login code in their query string.
func (d *Dashboard) newApp() *fiber.App {
	d.auth = session.NewStore(d.cfg.DataDir, d.log, time.Now())
	app := fiber.New(fiber.Config{
		// Values from Ctx outlive handlers here (bot names go to background
		// status requests), so they must not alias fasthttp's reused buffers.
		Immutable:    true,
		BodyLimit:    bodyLimit,
		ErrorHandler: d.handleError,
		ReadTimeout:  15 * time.Second,
		IdleTimeout:  60 * time.Second,
		// HEAD on the event stream would start a writer nobody reads.
		DisableHeadAutoRegister: true,
	})
	app.Use(func(c fiber.Ctx) error {
		setSecurityHeaders(c, d.cameThroughHTTPS(c))
		return c.Next()
	})

	app.Get("/healthz", func(c fiber.Ctx) error { return c.SendString("ok") })
	app.Get("/metrics", d.requireAuth, d.metricsHandler()) // metrics.go
	app.Get("/", d.handleIndex)
	app.Get("/static/*", d.handleStatic)
	app.Get("/login", d.handleLogin)
	// The page's form posts the token, so it stays out of the address bar
	// and the history; GET serves the one-time link printed at start (and
	// the old ?token= link, which nothing prints any more).
	app.Post("/login", d.handleLogin)
	// Logging out is a write: POST with the session's logout token. GET
	// only leads back to the page, so a link or an image cannot log out.
	app.Post("/logout", d.handleLogout)
	app.Get("/logout", func(c fiber.Ctx) error { return c.Redirect().Status(fiber.StatusSeeOther).To("/") })

	api := app.Group("/api", d.requireAuth)
	api.Get("/session", d.handleSession)
	api.Get("/bot/status", func(c fiber.Ctx) error { return d.handleStatus(c, d.cfg.DefaultBot) })
	api.Post("/bot/restart", func(c fiber.Ctx) error { return d.handleCommand(c, d.cfg.DefaultBot, bus.OpRestart) })
	api.Get("/bots", d.handleBots)
	api.Get("/bots/:name", func(c fiber.Ctx) error { return d.handleStatus(c, c.Params("name")) })
	api.Get("/bots/:name/events", func(c fiber.Ctx) error { return d.handleBotEvents(c, c.Params("name")) })
	api.Get("/bots/:name/samples", d.handleSamples)
	api.Get("/bots/:name/timeline", d.handleTimeline)
	api.Get("/bots/:name/logs", d.handleLogs)              // logs.go
	api.Get("/bots/:name/logs/stream", d.handleLogsStream) // logs.go
	for _, op := range []string{bus.OpRestart, bus.OpStop, bus.OpStart} {
		api.Post("/bots/:name/"+op, func(c fiber.Ctx) error { return d.handleCommand(c, strings.Clone(c.Params("name")), op) })
	}
	api.Get("/events", d.handleEvents)
	api.Get("/alerts", d.handleAlerts) // alerts_http.go
	api.Get("/stream", d.handleStream)
	api.Post("/login-link", d.handleLoginLink)
	refuseUnknownMethods(app, d.cameThroughHTTPS)
	return app
}

// handleError turns every error into the JSON error body, with the security
// headers even for errors raised before any middleware ran.
func (d *Dashboard) handleError(c fiber.Ctx, err error) error {
	setSecurityHeaders(c, d.cameThroughHTTPS(c))
	var fe *fiber.Error
	if !errors.As(err, &fe) {
		// c.Path has no query string, so this never logs a token.
		d.log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
		return fail(c, fiber.StatusInternalServerError, "internal error")
	}
	msg := fe.Message
	switch fe.Code {
	case fiber.StatusNotFound:
		msg = fmt.Sprintf("no such route: %s %s", c.Method(), c.Path())
	case fiber.StatusMethodNotAllowed:
		msg = fmt.Sprintf("method %s not allowed on %s", c.Method(), c.Path())
	case fiber.StatusRequestEntityTooLarge:
		msg = fmt.Sprintf("request body larger than %d KiB", bodyLimit>>10)
	}
	return fail(c, fe.Code, msg)
}

// authenticate checks the Bearer header, then the session cookie, each
// against the operator's keys and then the viewer's. A wrong Bearer token
// fails even with a good cookie.
func (d *Dashboard) authenticate(c fiber.Ctx) (authKind, session.Role, string) {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return authNone, session.RoleNone, ""
		}
		tok = strings.TrimSpace(tok)
		switch {
		case d.keys.TokenOK(tok):
			return authBearer, session.RoleOperator, ""
		case d.viewer.keys.TokenOK(tok):
			return authBearer, session.RoleViewer, ""
		}
		return authNone, session.RoleNone, ""
	}
	if v := c.Cookies(SessionCookie); v != "" {
		if _, _, r, ok := d.liveSession(v, time.Now()); ok {
			return authCookie, r, v
		}
	}
	return authNone, session.RoleNone, ""
}

// liveSession checks a session cookie value against the operator's keys,
// then the viewer's, and against the sessions ended by logout.
func (d *Dashboard) liveSession(v string, now time.Time) (keys session.Keys, id string, r session.Role, ok bool) {
	for _, k := range []struct {
		keys session.Keys
		role session.Role
	}{{d.keys, session.RoleOperator}, {d.viewer.keys, session.RoleViewer}} {
		if id, issued, ok := k.keys.Parse(v, now); ok {
			if !d.auth.Live(id, issued) {
				return session.Keys{}, "", session.RoleNone, false
			}
			return k.keys, id, k.role, true
		}
	}
	return session.Keys{}, "", session.RoleNone, false
}

// requireAuth guards every /api/ route: nothing behind it runs without a
// token, no write runs for a viewer, and cookie-authenticated writes also
// need the CSRF token.
func (d *Dashboard) requireAuth(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	kind, r, sess := d.authenticate(c)
	if kind == authNone {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="lifeline"`)
		return fail(c, fiber.StatusUnauthorized, "missing or wrong token")
	}
	if !safeMethod(c.Method()) {
		if r != session.RoleOperator {
			return fail(c, fiber.StatusForbidden, errViewerWrite)
		}
		if kind == authCookie && !d.keys.CSRFOK(sess, c.Get(CSRFHeader)) {
			return fail(c, fiber.StatusForbidden, "missing or wrong CSRF token ("+CSRFHeader+" header); reload the page")
		}
	}
	c.Locals(keyAuth, kind)
	c.Locals(keyRole, r)
	c.Locals(keySession, sess)
	return c.Next()
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

// sessionInfo is what the page learns about its session.
type sessionInfo struct {
	OK        bool   `json:"ok"`
	Auth      string `json:"auth"`
	Role      string `json:"role"` // "operator" or "viewer"
	CSRFToken string `json:"csrf_token,omitempty"`
	// LogoutToken goes with POST /logout (form field csrf, or the
	// X-CSRF-Token header); every cookie session, a viewer's too, gets one.
	LogoutToken string `json:"logout_token,omitempty"`
	DefaultBot  string `json:"default_bot"`
	Version     string `json:"version,omitempty"`
	Host        string `json:"host"`
}

func (d *Dashboard) handleSession(c fiber.Ctx) error {
	kind, _ := c.Locals(keyAuth).(authKind)
	r, _ := c.Locals(keyRole).(session.Role)
	sess, _ := c.Locals(keySession).(string)
	info := sessionInfo{OK: true, Auth: kind.String(), Role: r.String(), DefaultBot: d.cfg.DefaultBot, Version: d.cfg.Version, Host: d.host}
	// A viewer gets no CSRF token: it has no write to protect.
	if kind == authCookie && r == session.RoleOperator {
		info.CSRFToken = d.keys.CSRF(sess)
	}
	if kind == authCookie {
		keys := d.keys
		if r == session.RoleViewer {
			keys = d.viewer.keys
		}
		info.LogoutToken = keys.LogoutToken(sess)
	}
	return c.JSON(info)
}

// handleStatus answers one bot's status, asking its agent first so the
// answer is current.
func (d *Dashboard) handleStatus(c fiber.Ctx, name string) error {
	if err := bus.ValidName(name); err != nil {
		return fail(c, fiber.StatusBadRequest, err.Error())
	}
	answered := d.watch.ask(name)
	if !answered && !d.state.known(name) {
		return fail(c, fiber.StatusNotFound, fmt.Sprintf("unknown bot %q", name))
	}
	st, ok := d.state.status(name)
	if !ok {
		// Too many bots tracked to add this one; say what the agent said.
		return fail(c, fiber.StatusServiceUnavailable, fmt.Sprintf("too many bots tracked to follow %q", name))
	}
	return c.JSON(st)
}

// botList is the body of GET /api/bots.
type botList struct {
	DefaultBot  string       `json:"default_bot"`
	Bots        []bus.Status `json:"bots"`
	BadMessages int64        `json:"bad_messages"`
}

func (d *Dashboard) handleBots(c fiber.Ctx) error {
	return c.JSON(botList{DefaultBot: d.cfg.DefaultBot, Bots: d.state.all(), BadMessages: d.state.badMessages()})
}

func (d *Dashboard) handleEvents(c fiber.Ctx) error {
	return c.JSON(struct {
		Events []bus.Event `json:"events"`
	}{d.state.recentEvents()})
}

// handleBotEvents answers one bot's recent lifecycle events, newest first:
// those seen live and those loaded from the bus's history.
func (d *Dashboard) handleBotEvents(c fiber.Ctx, name string) error {
	if err := bus.ValidName(name); err != nil {
		return fail(c, fiber.StatusBadRequest, err.Error())
	}
	if !d.state.known(name) {
		return fail(c, fiber.StatusNotFound, fmt.Sprintf("unknown bot %q", name))
	}
	evs := []bus.Event{}
	for _, e := range d.state.recentEvents() {
		if e.Name == name {
			evs = append(evs, e)
		}
	}
	return c.JSON(struct {
		Events []bus.Event `json:"events"`
	}{evs})
}

// handleCommand forwards restart, stop or start to the bot's agent and
// answers with the agent's reply: 200 when it succeeded, 409 when the agent
// refused or failed, 503 when no agent answered.
func (d *Dashboard) handleCommand(c fiber.Ctx, name, op string) error {
	if err := bus.ValidName(name); err != nil {
		return fail(c, fiber.StatusBadRequest, err.Error())
	}
	if err := checkCommandBody(c.Body()); err != nil {
		return fail(c, fiber.StatusBadRequest, err.Error())
	}
	by := fmt.Sprintf("web, %s from %s", d.host, c.IP())
	if len(by) > 256 {
		by = by[:256]
	}
	timeout := commandTimeout
	if op == bus.OpStart {
		timeout = startTimeout
	}
	ctx, cancel := context.WithTimeout(d.runCtx, timeout)
	defer cancel()
	reply, err := bus.Ask(ctx, d.nc, name, op, bus.Request{RequestedBy: by})
	defer d.watch.refresh(name)
	switch {
	case errors.Is(err, bus.ErrNoAgent):
		d.log.Warn("command not delivered", "op", op, "bot", name, "requested_by", by, "err", err)
		return fail(c, fiber.StatusServiceUnavailable, err.Error())
	case errors.Is(err, bus.ErrRefused):
		// The dashboard's own login on an existing NATS lacks the right:
		// say so at once, not as a missing agent after a timeout.
		d.log.Error("the bus refused the dashboard's command", "op", op, "bot", name, "err", err)
		return fail(c, fiber.StatusForbidden, "the dashboard's bus login may not do this: "+err.Error())
	case err != nil:
		d.log.Warn("command failed", "op", op, "bot", name, "requested_by", by, "err", err)
		return fail(c, fiber.StatusBadGateway, err.Error())
	case !reply.OK:
		d.log.Warn("agent refused command", "op", op, "bot", name, "requested_by", by, "error", reply.Error)
		return c.Status(fiber.StatusConflict).JSON(reply)
	}
	d.log.Info("command done", "op", op, "bot", name, "requested_by", by,
		"pid", reply.PID, "old_pid", reply.OldPID, "new_pid", reply.NewPID)
	return c.JSON(reply)
}

// handleStream serves server-sent events: "statuses" events (each a JSON
// array of statuses) holding every bot at once, then one per flush holding
// the bots that changed (see state.flush), an "event" event per
// lifecycle event, and a "removed" event (a JSON array of names) when bots
// are forgotten.
//
// Streams are capped per browser session (session.MaxStreamsPerSession), per token
// given as Bearer (session.MaxStreamsPerBearer) and in all (session.MaxStreamsTotal), as
// each holds a goroutine and a buffer for as long as the client likes.
func (d *Dashboard) handleStream(c fiber.Ctx) error {
	kind, _ := c.Locals(keyAuth).(authKind)
	r, _ := c.Locals(keyRole).(session.Role)
	key, limit := "bearer "+r.String(), session.MaxStreamsPerBearer
	if kind == authCookie {
		sess, _ := c.Locals(keySession).(string)
		key, limit = "session "+sess, session.MaxStreamsPerSession
	}
	if !d.auth.OpenStream(key, limit) {
		return fail(c, fiber.StatusTooManyRequests,
			fmt.Sprintf("too many live streams (at most %d per %s, %d in all); close another tab or stream first", limit, kind, session.MaxStreamsTotal))
	}
	sub, snapshot := d.state.subscribe()
	if sub == nil {
		d.auth.CloseStream(key)
		return fail(c, fiber.StatusServiceUnavailable, "dashboard is shutting down")
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	// The stream is written on the connection itself (see serveStream), not
	// through fasthttp's body stream writer, which costs every stream a pipe,
	// two goroutine wake-ups and two copies per event: with 1,000 streams,
	// most of the dashboard's time. The writer runs on a goroutine fasthttp
	// starts; streams.Done lets Run wait for it.
	ctx := c.RequestCtx()
	chunked := ctx.Request.Header.IsHTTP11()
	if chunked {
		ctx.Response.Header.SetContentLength(-1) // Transfer-Encoding: chunked
	} else {
		ctx.Response.Header.SetContentLength(-2) // the body ends with the connection
		ctx.Response.Header.SetConnectionClose()
	}
	head := slices.Clone(ctx.Response.Header.Header())
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(conn net.Conn) {
		defer d.state.streams.Done()
		defer d.auth.CloseStream(key)
		defer d.state.unsubscribe(sub)
		serveStream(conn, head, chunked, sub, snapshot)
	})
	return nil
}

func (d *Dashboard) handleIndex(c fiber.Ctx) error {
	return d.sendAsset(c, "index.html")
}

func (d *Dashboard) handleStatic(c fiber.Ctx) error {
	name := c.Params("*")
	if !fs.ValidPath(name) || name == "." || name == "index.html" {
		return fiber.ErrNotFound
	}
	return d.sendAsset(c, name)
}

// contentType covers the page's own file types; mime.TypeByExtension would
// consult the host's (Windows: registry) tables and vary by machine.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	}
	return "application/octet-stream"
}

func (d *Dashboard) sendAsset(c fiber.Ctx, name string) error {
	data, err := fs.ReadFile(web.FS(), name)
	if err != nil {
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderContentType, contentType(name))
	// Assets change with the binary; always revalidate.
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(data)
}

// handleLogin turns a one-time login code (GET ?code=), or the token (in
// the form of POST, or the old GET ?token=), into a session cookie and
// sends the browser to the page, so neither stays in the address bar. The
// viewer token opens a viewer session, signed with the viewer's keys.
func (d *Dashboard) handleLogin(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	token, code := c.Query("token"), c.Query("code")
	if c.Method() == fiber.MethodPost {
		token, code = strings.TrimSpace(c.FormValue("token")), ""
	}
	if token == "" && code == "" {
		return sendHTML(c, fiber.StatusOK, loginPage(""))
	}
	ip := c.IP()
	now := time.Now()
	if wait := d.limiter.Wait(ip, now); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		return sendHTML(c, fiber.StatusTooManyRequests,
			loginPage(fmt.Sprintf("Too many wrong tokens from your address. Try again in %d s.", secs)))
	}
	r := session.RoleNone
	switch {
	case token != "" && d.keys.TokenOK(token):
		r = session.RoleOperator
	case token != "" && d.viewer.keys.TokenOK(token):
		r = session.RoleViewer
	case token != "":
		d.limiter.Fail(ip, now)
		d.log.Warn("login with a wrong token", "client", ip)
		return sendHTML(c, fiber.StatusUnauthorized,
			loginPage("Wrong token. Use the token printed where the dashboard was started, or the one in its data/"+TokenFile+
				" (or data/"+ViewerTokenFile+" to watch only)."))
	default:
		var ok bool
		if r, ok = d.auth.UseLink(code, now); !ok {
			d.limiter.Fail(ip, now)
			d.log.Warn("login with a used, expired or unknown link", "client", ip)
			return sendHTML(c, fiber.StatusUnauthorized,
				loginPage("This login link was already used or has expired (links work once, for 10 minutes). "+
					"Paste the token below, or get a new link with POST /api/login-link."))
		}
	}
	keys := d.keys
	if r == session.RoleViewer {
		keys = d.viewer.keys
	}
	d.limiter.Succeed(ip)
	c.Cookie(&fiber.Cookie{
		Name:     SessionCookie,
		Value:    keys.New(now),
		Path:     "/",
		MaxAge:   int(session.MaxAge / time.Second),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteStrictMode,
		Secure:   d.cameThroughHTTPS(c),
	})
	how := "token"
	if code != "" {
		how = "link"
	}
	d.log.Info("browser logged in", "client", ip, "role", r.String(), "with", how)
	return c.Redirect().Status(fiber.StatusSeeOther).To("/")
}

// loginURL returns a fresh one-time login link on base (scheme://host)
// for the operator, for the banner.
func (d *Dashboard) loginURL(base string) string {
	code, _ := d.auth.NewLink(session.RoleOperator, time.Now())
	return base + "/login?code=" + code
}

// loginLinkRequest is the optional body of POST /api/login-link.
type loginLinkRequest struct {
	Role string `json:"role"` // "operator" (default) or "viewer"
}

// loginLinkReply is the answer to POST /api/login-link.
type loginLinkReply struct {
	OK        bool      `json:"ok"`
	URL       string    `json:"url"`
	Path      string    `json:"path"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

// handleLoginLink makes a one-time login link, for an operator who wants to
// open the page somewhere without pasting the token. Only an operator gets
// here (requireAuth refuses a viewer's write).
func (d *Dashboard) handleLoginLink(c fiber.Ctx) error {
	var req loginLinkRequest
	if body := bytes.TrimSpace(c.Body()); len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || dec.More() {
			return fail(c, fiber.StatusBadRequest, `request body must be empty, {}, or {"role":"operator"|"viewer"}`)
		}
	}
	r := session.RoleOperator
	switch req.Role {
	case "", "operator":
	case "viewer":
		r = session.RoleViewer
	default:
		return fail(c, fiber.StatusBadRequest, `role must be "operator" or "viewer"`)
	}
	code, expires := d.auth.NewLink(r, time.Now())
	scheme := "http://"
	if d.cameThroughHTTPS(c) {
		scheme = "https://"
	}
	path := "/login?code=" + code
	d.log.Info("login link made", "client", c.IP(), "role", r.String())
	return c.JSON(loginLinkReply{OK: true, URL: scheme + c.Host() + path, Path: path, Role: r.String(), ExpiresAt: expires.UTC()})
}

// cameThroughHTTPS reports whether the browser reached the dashboard over
// HTTPS: through the TLS listener here (Fiber's c.Secure compares the
// protocol, "HTTP/1.1", with "https", so it never says so), or through a
// remote listener whose public URL is https (a tunnel ends TLS before the
// connection gets here, yet the browser's side is encrypted, and its
// session cookie must stay so).
func (d *Dashboard) cameThroughHTTPS(c fiber.Ctx) bool {
	if joinlistener.FromRemote(c.RequestCtx().Conn()) {
		return strings.HasPrefix(d.RemoteURL(), "https://")
	}
	return d.cfg.TLSCert != "" || c.RequestCtx().IsTLS()
}

// handleLogout ends the browser's session for good (a copy of the cookie
// stops working too) and clears the cookie. A live session must show its
// logout token, so another site cannot log the browser out.
func (d *Dashboard) handleLogout(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	now := time.Now()
	if v := c.Cookies(SessionCookie); v != "" {
		if keys, id, r, ok := d.liveSession(v, now); ok {
			presented := c.Get(CSRFHeader)
			if presented == "" {
				presented = c.FormValue("csrf")
			}
			if !keys.LogoutOK(v, presented) {
				return fail(c, fiber.StatusForbidden, "missing or wrong logout token (form field csrf or "+CSRFHeader+" header); reload the page")
			}
			_, issued, _ := keys.Parse(v, now)
			d.auth.Revoke(id, issued, now)
			d.log.Info("browser logged out", "client", c.IP(), "role", r.String())
		}
	}
	c.Cookie(&fiber.Cookie{
		Name:     SessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Expires:  time.Unix(0, 0),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteStrictMode,
		Secure:   d.cameThroughHTTPS(c),
	})
	return c.Redirect().Status(fiber.StatusSeeOther).To("/")
}

func sendHTML(c fiber.Ctx, code int, body string) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(code).SendString(body)
}

// loginPage is the stand-alone login form, with msg (plain text) above it.
// It mirrors the page's own #login section, so both look and behave alike.
func loginPage(msg string) string {
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8">` +
		`<meta name="viewport" content="width=device-width, initial-scale=1">` +
		`<title>lifeline: log in</title><link rel="icon" href="/static/favicon.svg" type="image/svg+xml">` +
		`<link rel="stylesheet" href="/static/style.css"></head><body>` +
		`<header class="topbar"><h1>lifeline</h1></header><main id="main">` +
		`<section id="login" class="card login" aria-labelledby="login-title"><h2 id="login-title">Log in</h2>`)
	if msg != "" {
		b.WriteString(`<p id="login-message" class="login-message" role="alert">` + html.EscapeString(msg) + `</p>`)
	}
	b.WriteString(`<p>Paste the dashboard's access token. It is printed where <code>lifeline dashboard</code> ` +
		`was started and stored in <code>data/` + TokenFile + `</code> next to it. ` +
		`The token in <code>data/` + ViewerTokenFile + `</code> lets you watch without restarting, stopping or starting.</p>` +
		`<form id="login-form" action="/login" method="post"><label for="login-token">Access token</label>` +
		`<input id="login-token" name="token" type="password" autocomplete="current-password" ` +
		`autocapitalize="off" spellcheck="false" required autofocus>` +
		`<button id="login-btn" type="submit">Log in</button></form></section></main></body></html>`)
	return b.String()
}
