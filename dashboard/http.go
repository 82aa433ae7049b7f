package dashboard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/lifeline-dev/lifeline/bus"
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

// role says what a request may do: an operator everything, a viewer (who
// knows only the viewer token) read but never command.
type role int

const (
	roleNone role = iota
	roleOperator
	roleViewer
)

func (r role) String() string {
	switch r {
	case roleOperator:
		return "operator"
	case roleViewer:
		return "viewer"
	}
	return "none"
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

func setSecurityHeaders(c fiber.Ctx) {
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("Content-Security-Policy", csp)
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set("Cross-Origin-Resource-Policy", "same-origin")
	c.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

// newApp builds the Fiber app. It deliberately has no request logger: the
// login URL carries the token in its query string.
func (d *Dashboard) newApp() *fiber.App {
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
		setSecurityHeaders(c)
		return c.Next()
	})

	app.Get("/healthz", func(c fiber.Ctx) error { return c.SendString("ok") })
	app.Get("/", d.handleIndex)
	app.Get("/static/*", d.handleStatic)
	app.Get("/login", d.handleLogin)
	// The page's form posts the token, so it stays out of the address bar
	// and the history; GET serves the link printed at start.
	app.Post("/login", d.handleLogin)
	app.Get("/logout", d.handleLogout)

	api := app.Group("/api", d.requireAuth)
	api.Get("/session", d.handleSession)
	api.Get("/bot/status", func(c fiber.Ctx) error { return d.handleStatus(c, d.DefaultBot) })
	api.Post("/bot/restart", func(c fiber.Ctx) error { return d.handleCommand(c, d.DefaultBot, bus.OpRestart) })
	api.Get("/bots", d.handleBots)
	api.Get("/bots/:name", func(c fiber.Ctx) error { return d.handleStatus(c, c.Params("name")) })
	api.Get("/bots/:name/events", func(c fiber.Ctx) error { return d.handleBotEvents(c, c.Params("name")) })
	for _, op := range []string{bus.OpRestart, bus.OpStop, bus.OpStart} {
		api.Post("/bots/:name/"+op, func(c fiber.Ctx) error { return d.handleCommand(c, strings.Clone(c.Params("name")), op) })
	}
	api.Get("/events", d.handleEvents)
	api.Get("/stream", d.handleStream)
	refuseUnknownMethods(app)
	return app
}

// handleError turns every error into the JSON error body, with the security
// headers even for errors raised before any middleware ran.
func (d *Dashboard) handleError(c fiber.Ctx, err error) error {
	setSecurityHeaders(c)
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
func (d *Dashboard) authenticate(c fiber.Ctx) (authKind, role, string) {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return authNone, roleNone, ""
		}
		tok = strings.TrimSpace(tok)
		switch {
		case d.keys.tokenOK(tok):
			return authBearer, roleOperator, ""
		case d.viewer.keys.tokenOK(tok):
			return authBearer, roleViewer, ""
		}
		return authNone, roleNone, ""
	}
	if v := c.Cookies(SessionCookie); v != "" {
		now := time.Now()
		switch {
		case d.keys.sessionOK(v, now):
			return authCookie, roleOperator, v
		case d.viewer.keys.sessionOK(v, now):
			return authCookie, roleViewer, v
		}
	}
	return authNone, roleNone, ""
}

// requireAuth guards every /api/ route: nothing behind it runs without a
// token, no write runs for a viewer, and cookie-authenticated writes also
// need the CSRF token.
func (d *Dashboard) requireAuth(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	kind, r, session := d.authenticate(c)
	if kind == authNone {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="lifeline"`)
		return fail(c, fiber.StatusUnauthorized, "missing or wrong token")
	}
	if !safeMethod(c.Method()) {
		if r != roleOperator {
			return fail(c, fiber.StatusForbidden, errViewerWrite)
		}
		if kind == authCookie && !d.keys.csrfOK(session, c.Get(CSRFHeader)) {
			return fail(c, fiber.StatusForbidden, "missing or wrong CSRF token ("+CSRFHeader+" header); reload the page")
		}
	}
	c.Locals(keyAuth, kind)
	c.Locals(keyRole, r)
	c.Locals(keySession, session)
	return c.Next()
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

// sessionInfo is what the page learns about its session.
type sessionInfo struct {
	OK         bool   `json:"ok"`
	Auth       string `json:"auth"`
	Role       string `json:"role"` // "operator" or "viewer"
	CSRFToken  string `json:"csrf_token,omitempty"`
	DefaultBot string `json:"default_bot"`
	Version    string `json:"version,omitempty"`
	Host       string `json:"host"`
}

func (d *Dashboard) handleSession(c fiber.Ctx) error {
	kind, _ := c.Locals(keyAuth).(authKind)
	r, _ := c.Locals(keyRole).(role)
	session, _ := c.Locals(keySession).(string)
	info := sessionInfo{OK: true, Auth: kind.String(), Role: r.String(), DefaultBot: d.DefaultBot, Version: d.Version, Host: d.host}
	// A viewer gets no CSRF token: it has no write to protect.
	if kind == authCookie && r == roleOperator {
		info.CSRFToken = d.keys.csrf(session)
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
	return c.JSON(botList{DefaultBot: d.DefaultBot, Bots: d.state.all(), BadMessages: d.state.badMessages()})
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
	by := fmt.Sprintf("dashboard %s from %s", d.host, c.IP())
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

// handleStream serves server-sent events: a "status" event per bot at once,
// then one whenever a status changes, and an "event" event per lifecycle
// event.
func (d *Dashboard) handleStream(c fiber.Ctx) error {
	sub, snapshot := d.state.subscribe()
	if sub == nil {
		return fail(c, fiber.StatusServiceUnavailable, "dashboard is shutting down")
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	// The writer runs on a goroutine fasthttp starts; streams.Done lets Run
	// wait for it.
	return c.SendStreamWriter(func(w *bufio.Writer) {
		defer d.state.streams.Done()
		defer d.state.unsubscribe(sub)
		if _, err := w.WriteString("retry: 2000\n\n"); err != nil {
			return
		}
		for _, m := range snapshot {
			writeEvent(w, m)
		}
		if w.Flush() != nil {
			return
		}
		keepAlive := time.NewTicker(keepAliveInterval)
		defer keepAlive.Stop()
		for {
			select {
			case <-sub.done:
				return
			case m := <-sub.ch:
				writeEvent(w, m)
			case <-keepAlive.C:
				w.WriteString(": keep-alive\n\n")
			}
			if w.Flush() != nil {
				return // the browser went away
			}
		}
	})
}

func writeEvent(w *bufio.Writer, m sseMsg) {
	// JSON from encoding/json has no raw newlines, so one data line suffices.
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m.event, m.data)
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

// handleLogin turns the token (in the query of GET, in the form of POST)
// into a session cookie and sends the browser to the page, so the token
// leaves the address bar at once. The viewer token opens a viewer session,
// signed with the viewer's keys.
func (d *Dashboard) handleLogin(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	token := c.Query("token")
	if c.Method() == fiber.MethodPost {
		token = strings.TrimSpace(c.FormValue("token"))
	}
	if token == "" {
		return sendHTML(c, fiber.StatusOK, loginPage(""))
	}
	ip := c.IP()
	now := time.Now()
	if wait := d.limiter.wait(ip, now); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		return sendHTML(c, fiber.StatusTooManyRequests,
			loginPage(fmt.Sprintf("Too many wrong tokens from your address. Try again in %d s.", secs)))
	}
	keys, r := d.keys, roleOperator
	switch {
	case d.keys.tokenOK(token):
	case d.viewer.keys.tokenOK(token):
		keys, r = d.viewer.keys, roleViewer
	default:
		d.limiter.fail(ip, now)
		d.log.Warn("login with a wrong token", "client", ip)
		return sendHTML(c, fiber.StatusUnauthorized,
			loginPage("Wrong token. Use the token printed where the dashboard was started, or the one in its data/"+TokenFile+
				" (or data/"+ViewerTokenFile+" to watch only)."))
	}
	d.limiter.succeed(ip)
	c.Cookie(&fiber.Cookie{
		Name:     SessionCookie,
		Value:    keys.newSession(now),
		Path:     "/",
		MaxAge:   int(sessionMaxAge / time.Second),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteStrictMode,
		Secure:   d.cameThroughHTTPS(c),
	})
	d.log.Info("browser logged in", "client", ip, "role", r.String())
	return c.Redirect().Status(fiber.StatusSeeOther).To("/")
}

// cameThroughHTTPS reports whether the browser reached the dashboard over
// HTTPS: served with TLS here, or through a remote listener whose public URL
// is https (a tunnel ends TLS before the connection gets here, yet the
// browser's side is encrypted, and its session cookie must stay so).
func (d *Dashboard) cameThroughHTTPS(c fiber.Ctx) bool {
	if c.Secure() {
		return true
	}
	_, remote := c.RequestCtx().Conn().(remoteConn)
	return remote && strings.HasPrefix(d.RemoteURL(), "https://")
}

func (d *Dashboard) handleLogout(c fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Cookie(&fiber.Cookie{
		Name:     SessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Expires:  time.Unix(0, 0),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteStrictMode,
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
