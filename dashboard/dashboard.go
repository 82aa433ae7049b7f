// Package dashboard is the lifeline dashboard: it embeds the bus (a NATS
// server), follows every bot's heartbeats and lifecycle events on it, asks
// their agents for status, and serves the web page and the HTTP API through
// which operators watch bots and restart, stop or start them.
//
// A Config holds every setting; Open validates it, settles the tokens,
// starts the bus and binds the listeners, and returns a Dashboard, which
// Run serves until its context ends. Inside, the watcher (watch.go) feeds
// the bots' state (state.go), which the handlers (http.go) read. Browser
// logins live in package session, the event history in package history,
// and serving a tunnel beside the local listener in internal/joinlistener.
package dashboard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/history"
	"github.com/lifeline-dev/lifeline/dashboard/internal/joinlistener"
	"github.com/lifeline-dev/lifeline/dashboard/samples"
	"github.com/lifeline-dev/lifeline/dashboard/session"
	"github.com/nats-io/nats.go"
)

// TokenFile is the name, inside DataDir, of the file holding the generated
// access token.
const TokenFile = "dashboard.token"

// Timings of the watcher and the HTTP server.
const (
	// statusTimeout bounds one status request to an agent: a healthy agent
	// answers from memory at once, so a second means it is not there.
	statusTimeout = time.Second
	// pollInterval is how often every agent is asked again (through one of
	// its bots, see state.due) and micro discovery runs, so agents that came
	// up quietly are found.
	pollInterval = 2 * time.Second
	// refreshInterval is how often each bot of an answering agent is asked
	// for its status, for what changes without an event (CPU and memory,
	// the PID file's problem); the charts sample every 10 s too.
	refreshInterval = 10 * time.Second
	// discoverIdle is the longest wait between discovery rounds: after a
	// round that brings no lead the wait doubles from pollInterval up to it.
	// Every agent answers a round once per bot, while new agents announce
	// themselves with an event anyway.
	discoverIdle = 10 * time.Second
	// discoverWindow is how long discovery collects micro INFO replies.
	discoverWindow = 200 * time.Millisecond
	// heartbeatFresh is how old the last heartbeat may be for a bot without
	// an answering agent to still count as running (3 heartbeat intervals,
	// rounded up to the agent's default hang timeout).
	heartbeatFresh = 5 * time.Second
	// commandTimeout bounds restart and stop, which wait for the bot to shut
	// down (up to the agent's --stop-timeout) and start again.
	commandTimeout = 30 * time.Second
	// startTimeout bounds start, which only spawns a process.
	startTimeout = 5 * time.Second
	// shutdownTimeout bounds the HTTP server's graceful shutdown.
	shutdownTimeout = 5 * time.Second
	// drainTimeout bounds draining the dashboard's own bus client.
	drainTimeout = 3 * time.Second
	// keepAliveInterval is how often an idle event stream gets a comment, so
	// proxies keep it open and dead clients are noticed.
	keepAliveInterval = 15 * time.Second
	// bodyLimit refuses request bodies larger than this.
	bodyLimit = 64 << 10
	// maxEvents is how many recent lifecycle events are kept (all bots).
	maxEvents = 100
	// maxBots bounds the bots tracked, so a flood of made-up names on the
	// bus cannot exhaust memory.
	maxBots = 1000
)

// Dashboard is an opened dashboard: its bus started, its HTTP listener
// bound, its tokens settled. Open makes one from a Config; Run serves it.
type Dashboard struct {
	// Set by Open and immutable after: Open returns only once they are
	// set, so the accessors, Run and the handlers read them without a lock.
	cfg     Config // with its defaults
	srv     *bus.Server
	ln      net.Listener
	app     *fiber.App
	token   string
	keys    session.Keys
	viewer  viewerAuth
	log     *slog.Logger
	host    string // os.Hostname, for requested_by
	addr    string // bound HTTP address
	remote  string // public URL of Remote, "" without
	natsURL string
	admin   bus.User // the dashboard's own bus login when users are required
	state   *state
	limiter *session.Limiter
	auth    sessionStore // ended sessions, login links, stream counts

	// Set once by Run before serving starts, and immutable after: only the
	// handlers, which Run starts afterwards, read them. runCtx is cancelled
	// when Run starts shutting down; handlers derive their bus request
	// contexts from it.
	runCtx context.Context
	nc     *nats.Conn
	watch  *watcher
	alerts *alerter // nil without Config.Alerts (alerts.go)

	// samples keeps the charts' samples (samples_http.go), nil without
	// history; set by Run before serving, like runCtx. sampleEvery is its
	// interval, 0 for the default (tests shorten it).
	samples     *samples.Sampler
	sampleEvery time.Duration

	// mu guards closed and connErr, which Run, Close and the bus client's
	// callbacks change while others read them.
	mu      sync.Mutex
	closed  bool
	connErr error // the last failure to reach ExternalNATS, if any
}

// Open validates cfg, creates the data directory, settles the tokens,
// starts the embedded bus and binds the HTTP listener, then prints where to
// reach the dashboard. ctx bounds opening cfg.Remote (a tunnel), which may
// wait on the network. Port conflicts fail here, and nothing stays started
// when Open fails. Call Run to serve, or Close to give it all back.
func Open(ctx context.Context, cfg Config) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := &Dashboard{cfg: cfg, log: cfg.Logger.With("component", "dashboard")}
	if err := ensureDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	token, fromFile, err := d.settleToken()
	if err != nil {
		return nil, err
	}
	viewer, err := d.settleViewer(token)
	if err != nil {
		return nil, err
	}

	var srv *bus.Server
	if cfg.ExternalNATS == "" {
		if srv, err = d.startBus(); err != nil {
			return nil, err
		}
	}
	ln, err := d.listen()
	if err != nil {
		// Nothing half-started: the bus goes down with the failed bind.
		if srv != nil {
			srv.Close()
		}
		return nil, err
	}
	addr := ln.Addr().String()
	if cfg.Remote != nil {
		rln, u, err := d.openRemote(ctx)
		if err != nil {
			ln.Close()
			if srv != nil {
				srv.Close()
			}
			return nil, fmt.Errorf("%w: %w", ErrRemote, err)
		}
		d.remote = u
		ln = joinlistener.Join(ln, rln, d.log)
	}

	d.srv, d.ln, d.token = srv, ln, token
	d.keys = session.NewKeys(token)
	d.viewer = viewer
	d.addr = addr
	if srv != nil {
		d.natsURL = clientURL(srv.Addr(), cfg.BusTLSCert != "")
	} else {
		d.natsURL = bus.Redact(cfg.ExternalNATS)
	}
	d.host, _ = os.Hostname()
	if d.host == "" {
		d.host = "unknown-host"
	}
	d.state = newState(cfg.DefaultBot)
	d.limiter = session.NewLimiter()
	d.app = d.newApp()

	if d.remote != "" {
		d.log.Info("dashboard listening", "http", d.addr, "remote", d.remote, "bus", d.natsURL)
	} else {
		d.log.Info("dashboard listening", "http", d.addr, "bus", d.natsURL)
	}
	d.printBanner(fromFile)
	return d, nil
}

// startBus starts the embedded bus server.
func (d *Dashboard) startBus() (*bus.Server, error) {
	host, _ := os.Hostname()
	cfg := bus.ServerConfig{
		Listen:        d.cfg.NATSListen,
		Name:          serverName(host, d.cfg.ClusterListen, d.cfg.NATSListen),
		ClusterListen: d.cfg.ClusterListen,
		ClusterName:   d.cfg.ClusterName,
		Routes:        d.cfg.Routes,
		Users:         d.cfg.Users,
		TLSCert:       d.cfg.BusTLSCert,
		TLSKey:        d.cfg.BusTLSKey,
	}
	if !d.cfg.NoHistory || len(d.cfg.Alerts) > 0 {
		// Alerts are queued in JetStream too (alerts.go).
		cfg.StoreDir = filepath.Join(d.cfg.DataDir, "jetstream")
	}
	busDir := filepath.Join(d.cfg.DataDir, "bus")
	users := d.cfg.Users
	if len(users) == 0 {
		var err error
		if users, err = bus.EnsureDir(busDir); err != nil {
			return nil, fmt.Errorf("start bus: %w", err)
		}
	}
	if cfg.RouteSecret = d.cfg.RouteSecret; cfg.RouteSecret == "" && d.cfg.ClusterListen != "" {
		var err error
		if cfg.RouteSecret, err = bus.RouteSecret(busDir); err != nil {
			return nil, fmt.Errorf("start bus: %w", err)
		}
	}
	// The dashboard's own in-process client logs in as an admin known only
	// to this process.
	d.admin = bus.User{Name: "lifeline-dashboard-" + randomHex(8), Password: randomHex(32), Role: bus.RoleAdmin}
	cfg.Users = append(slices.Clone(users), d.admin)
	srv, err := bus.StartServer(cfg)
	if err != nil {
		if errors.Is(err, bus.ErrNoCredentials) || errors.Is(err, bus.ErrNoRouteCredentials) || errors.Is(err, bus.ErrClusterNeedsRoutes) {
			return nil, fmt.Errorf("start bus: %w", err)
		}
		return nil, &ListenError{What: "bus", Addr: d.cfg.NATSListen, Err: err}
	}
	return srv, nil
}

// listen binds the HTTP listener, with TLS when a certificate is given.
func (d *Dashboard) listen() (net.Listener, error) {
	var cfg *tls.Config
	if d.cfg.TLSCert != "" || d.cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(d.cfg.TLSCert, d.cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrHTTPSCert, err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", d.cfg.HTTPAddr)
	if err != nil {
		return nil, &ListenError{What: "http", Addr: d.cfg.HTTPAddr, Err: err}
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}

// connect opens the dashboard's own bus client: in-process to the embedded
// server, or over the network to an existing NATS.
func (d *Dashboard) connect() (*nats.Conn, error) {
	opts := []nats.Option{
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			// Typically a slow consumer: messages were dropped, not delivered late.
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			d.log.Warn("bus client error", "subject", subject, "err", err)
		}),
	}
	if d.srv == nil {
		if d.cfg.NATSCA != "" {
			opts = append(opts, nats.RootCAs(d.cfg.NATSCA))
		}
		// The client keeps retrying an existing NATS it cannot reach; say
		// why, once per cause, or the page would stay empty in silence.
		opts = append(opts, nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return
			}
			d.mu.Lock()
			same := d.connErr != nil && sameCause(d.connErr, err)
			d.connErr = err
			d.mu.Unlock()
			if same {
				return
			}
			if unknownCA(err) {
				d.log.Error("cannot reach the bus: its TLS certificate is signed by an unknown CA; pass --nats-ca FILE with that CA",
					"bus", bus.Redact(d.cfg.ExternalNATS), "err", err)
				return
			}
			d.log.Warn("cannot reach the bus; retrying", "bus", bus.Redact(d.cfg.ExternalNATS), "err", err)
		}))
		login, err := bus.ResolveLogin(d.cfg.ExternalNATS, d.cfg.NATSNkey, "")
		if err != nil {
			return nil, err
		}
		lopts, err := login.Options()
		if err != nil {
			return nil, err
		}
		nc, err := bus.Connect(d.cfg.ExternalNATS, "lifeline-dashboard", true, append(opts, lopts...)...)
		if err != nil {
			return nil, err
		}
		return nc, nil
	}
	if d.admin.Name != "" {
		opts = append(opts, nats.UserInfo(d.admin.Name, d.admin.Password))
	}
	nc, err := nats.Connect("", append(opts,
		nats.InProcessServer(d.srv),
		// Agents name the dashboard as the requester of what the page asks.
		nats.CustomInboxPrefix(bus.InboxPrefix(bus.DashboardLogin)),
		nats.Name("lifeline-dashboard"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(bus.ReconnectWait),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded bus: %w", err)
	}
	return nc, nil
}

// busTrouble says why the existing NATS could not be reached, as an
// *UnreachableError, or returns nil when nothing went wrong connecting.
func (d *Dashboard) busTrouble() error {
	d.mu.Lock()
	err := d.connErr
	d.mu.Unlock()
	if err == nil {
		return nil
	}
	return &UnreachableError{URL: bus.Redact(d.cfg.ExternalNATS), Err: err}
}

// checkCAFile proves path holds at least one PEM certificate, so a wrong
// NATSCA fails at start rather than on every reconnect.
func checkCAFile(path string) error {
	pem, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBusCA, err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return fmt.Errorf("bus CA %s %w", path, ErrNoCACert)
	}
	return nil
}

// serverName names this dashboard's bus server, uniquely in a cluster and
// the same across restarts (JetStream remembers its peers by name).
func serverName(host string, listens ...string) string {
	port := randomHex(4)
	for _, l := range listens {
		if h, p, _ := net.SplitHostPort(l); p != "" && p != "0" {
			// Several dashboards of one host differ by address or port.
			port = p
			if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
				port = h + "-" + p
			}
			break
		}
	}
	name := "lifeline-" + host + "-" + port
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '.' || r == '*' || r == '>' || r == ':' {
			return '-'
		}
		return r
	}, name)
}

// Addr returns the HTTP address actually bound.
func (d *Dashboard) Addr() string {
	return d.addr
}

// RemoteURL returns the public URL of Config.Remote, "" without.
func (d *Dashboard) RemoteURL() string {
	return d.remote
}

// NATSURL returns the client URL of the bus (redacted for ExternalNATS).
func (d *Dashboard) NATSURL() string {
	return d.natsURL
}

// AccessToken returns the token in force: Config.Token, or the one read
// from or written to the token file.
func (d *Dashboard) AccessToken() string {
	return d.token
}

// Close releases what Open acquired when Run is not going to be called. It
// is a no-op after Run has returned, and Run refuses to start after Close.
func (d *Dashboard) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	err := d.ln.Close()
	if d.srv != nil {
		d.srv.Close()
	}
	if err != nil {
		return fmt.Errorf("close HTTP listener: %w", err)
	}
	return nil
}

// Run serves until ctx is done. On the way out it ends live streams, shuts the HTTP server down,
// drains its bus client and stops the embedded bus. It returns nil after a
// clean stop.
func (d *Dashboard) Run(ctx context.Context) error {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return errors.New("run dashboard: already closed")
	}

	nc, err := d.connect()
	if err != nil {
		d.Close()
		return err
	}
	closedCh := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closedCh) })

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var hist *history.History
	var rec eventRecorder // nil without history: records nothing
	if !d.cfg.NoHistory {
		// Before subscribing, so that no event goes unrecorded.
		hist = d.newHistory(nc)
		rec = hist
	}
	w := newWatcher(nc, d.state, d.log, rec, runCtx, &wg)
	d.runCtx, d.nc, d.watch = runCtx, nc, w
	if !d.cfg.NoHistory {
		d.samples = d.newSampler(nc)
	}
	if targets, _ := newAlertTargets(d.cfg.Alerts); len(targets) > 0 { // checked by Open
		var cluster history.Cluster
		if d.srv != nil {
			cluster = d.srv // a nil *bus.Server would be a non-nil Cluster
		}
		d.alerts = newAlerter(d.log, d.state, nc, cluster, targets, d.cfg)
		w.alerts = d.alerts
	}
	if err := w.subscribe(); err != nil {
		nc.Close()
		d.Close()
		if why := d.busTrouble(); why != nil {
			return why // the reason the bus could not be reached
		}
		return err
	}

	served := make(chan struct{})
	var serveErr error
	wg.Go(func() {
		defer close(served)
		serveErr = d.app.Listener(d.ln, fiber.ListenConfig{DisableStartupMessage: true})
	})
	wg.Go(w.poll)
	wg.Go(func() { d.state.runFlusher(runCtx) })
	if !d.cfg.NoHistory {
		wg.Go(func() { hist.Run(runCtx) })
		wg.Go(func() { d.samples.Run(runCtx) })
	}
	if d.alerts != nil {
		wg.Go(func() { d.alerts.run(runCtx) })
	}

	var runErr error
	select {
	case <-ctx.Done():
	case <-served:
		// Serving stopped on its own: the listener broke.
		if serveErr == nil {
			serveErr = errors.New("stopped unexpectedly")
		}
		runErr = fmt.Errorf("serve HTTP: %w", serveErr)
	}

	d.log.Info("dashboard stopping")
	cancel()
	w.stop()
	d.state.closeStreams()

	shCtx, shCancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	if err := d.app.ShutdownWithContext(shCtx); err != nil && !errors.Is(err, fiber.ErrNotRunning) {
		d.log.Warn("HTTP shutdown incomplete", "err", err)
	}
	shCancel()
	// Serve may not have registered the listener before the shutdown above;
	// closing it makes such a late Serve return at once.
	d.ln.Close()
	<-served

	if err := nc.Drain(); err != nil {
		nc.Close()
	}
	select {
	case <-closedCh:
	case <-time.After(drainTimeout):
		nc.Close()
	}

	wg.Wait()
	d.state.waitStreams()

	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	if d.srv != nil {
		d.srv.Close()
	}
	d.log.Info("dashboard stopped")
	return runErr
}

// newHistory makes the event history on nc, merging what the stream holds
// into the state.
func (d *Dashboard) newHistory(nc *nats.Conn) *history.History {
	cfg := history.Config{Log: d.log, Merge: d.state.history}
	if d.srv != nil {
		cfg.Cluster = d.srv // a nil *bus.Server would be a non-nil Cluster
	}
	return history.New(nc, cfg)
}

// printBanner tells the operator where the page is and how to log in. The
// token goes to Out only, never to the logger.
func (d *Dashboard) printBanner(fromFile bool) {
	host, port, _ := net.SplitHostPort(d.addr)
	ip := net.ParseIP(host)
	shown := host
	if ip != nil && ip.IsUnspecified() {
		shown = "127.0.0.1"
	}
	scheme := "http://"
	if d.cfg.TLSCert != "" {
		scheme = "https://"
	}
	base := scheme + net.JoinHostPort(shown, port)
	fmt.Fprintf(d.cfg.Out, "lifeline dashboard\n")
	fmt.Fprintf(d.cfg.Out, "  page:       %s/\n", base)
	if ip != nil && ip.IsUnspecified() {
		fmt.Fprintf(d.cfg.Out, "              %s%s/ from other machines\n", scheme, net.JoinHostPort(d.host, port))
	}
	fmt.Fprintf(d.cfg.Out, "  login:      %s  (works once, for 10 minutes)\n", d.loginURL(base))
	if d.remote != "" {
		remote := strings.TrimSuffix(d.remote, "/")
		fmt.Fprintf(d.cfg.Out, "  remote:     %s/\n", remote)
		fmt.Fprintf(d.cfg.Out, "              %s  (works once, for 10 minutes)\n", d.loginURL(remote))
	}
	if fromFile {
		fmt.Fprintf(d.cfg.Out, "  token file: %s\n", tokenPath(d.cfg.DataDir))
	} else {
		fmt.Fprintf(d.cfg.Out, "  token:      given with --token\n")
	}
	fmt.Fprintf(d.cfg.Out, "  view only:  %s\n", d.viewer.where)
	fmt.Fprintf(d.cfg.Out, "  bus:        %s\n", d.natsURL)
}

// clientURL turns the bus listener address into a URL clients can dial:
// an unspecified host (0.0.0.0, ::) becomes loopback.
func clientURL(a net.Addr, secure bool) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || tcp == nil {
		return ""
	}
	host := tcp.IP.String()
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "nats://"
	if secure {
		scheme = "tls://"
	}
	return scheme + net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}
