// Package dashboard is the lifeline dashboard: it embeds the bus (a NATS
// server), follows every bot's heartbeats and lifecycle events on it, asks
// their agents for status, and serves the web page and the HTTP API through
// which operators watch bots and restart, stop or start them.
package dashboard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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
	"github.com/nats-io/nats.go"
)

// Defaults for the Dashboard fields left empty.
const (
	DefaultHTTPAddr   = "0.0.0.0:8000"
	DefaultNATSListen = "127.0.0.1:4222"
	DefaultDataDir    = "./data"
	DefaultBotName    = "bot"
)

// TokenFile is the name, inside DataDir, of the file holding the generated
// access token.
const TokenFile = "dashboard.token"

// Timings of the watcher and the HTTP server.
const (
	// statusTimeout bounds one status request to an agent: a healthy agent
	// answers from memory at once, so a second means it is not there.
	statusTimeout = time.Second
	// pollInterval is how often every known bot's agent is asked again and
	// micro discovery runs, so agents that came up quietly are found.
	pollInterval = 2 * time.Second
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

// Dashboard serves the web page and HTTP API and embeds the bus. Set the
// exported fields, then call Open (optional) and Run.
type Dashboard struct {
	// HTTPAddr is host:port for the page and API; default DefaultHTTPAddr.
	HTTPAddr string
	// NATSListen is host:port of the embedded bus; default DefaultNATSListen.
	NATSListen string
	// DataDir holds the generated token file; default DefaultDataDir.
	DataDir string
	// Token is the access token; "" reads DataDir/dashboard.token or
	// generates one there (mode 0600).
	Token string
	// ViewerToken is the read-only token (page and GETs, no commands); ""
	// reads DataDir/dashboard.viewer.token or generates it (0600).
	ViewerToken string
	// DefaultBot is the bot the /api/bot/... routes and the page's emergency
	// card act on; default DefaultBotName.
	DefaultBot string
	// Version is reported by /api/session.
	Version string
	// Logger receives operational logs; never the token. Default slog.Default().
	Logger *slog.Logger
	// ClusterListen (host:port), ClusterName and Routes join this
	// dashboard's bus with other dashboards' into one NATS cluster.
	ClusterListen string
	ClusterName   string
	Routes        []string
	// Users may log in to the bus (see bus.ReadUsers). Without any, the
	// dashboard creates, or reuses, the nkey logins of DataDir/bus (see
	// bus.EnsureDir): the bus never takes an anonymous client.
	Users []bus.User
	// RouteSecret is the password the cluster's servers present to each
	// other; default: DataDir/bus/route.secret when it exists. A cluster
	// port beyond loopback refuses to start without one.
	RouteSecret string
	// NATSNkey is the nkey seed file the dashboard logs in to ExternalNATS
	// with, when the URL carries no user.
	NATSNkey string
	// NoHistory turns off the JetStream stream of lifecycle events.
	NoHistory bool
	// ExternalNATS, a comma-separated URL list, makes the dashboard use an
	// existing NATS deployment instead of embedding a server; NATSListen,
	// the cluster fields and Users are then unused.
	ExternalNATS string
	// NATSCA is a PEM file of the CA that signed ExternalNATS's TLS
	// certificate, for a deployment with a private CA. It is only for
	// ExternalNATS: the dashboard's client of its embedded bus connects
	// in-process, with no TLS to verify, so Open refuses it without.
	NATSCA string
	// TLSCert and TLSKey (PEM files) serve the page and API over HTTPS.
	TLSCert, TLSKey string
	// BusTLSCert and BusTLSKey (PEM files) make the embedded bus require TLS.
	BusTLSCert, BusTLSKey string
	// Remote, if set, is opened by Open after the HTTP listener and serves
	// the same page and API (an ngrok tunnel, for remote access); its URL is
	// printed with the local one, and it is closed when the dashboard stops.
	Remote RemoteListener

	// Out is where the page URL, login URL (with the token) and token file are
	// printed for the operator; default os.Stdout. It is never the logger, so
	// the token does not end up in log collectors.
	Out io.Writer

	// mu guards opened, closed and connErr, and Open's one-time writes of
	// the block after them.
	mu      sync.Mutex
	opened  bool
	closed  bool
	connErr error // the last failure to reach ExternalNATS, if any

	// Set once by Open, under mu, and immutable after Open. The exported
	// accessors (Addr, AccessToken...) take mu, since they may be called
	// while another goroutine opens; what runs only after Open (Run and the
	// handlers) reads them without it.
	srv     *bus.Server
	ln      net.Listener
	app     *fiber.App
	token   string
	keys    sessionKeys
	viewer  viewerAuth
	log     *slog.Logger
	host    string // os.Hostname, for requested_by
	addr    string // bound HTTP address
	remote  string // public URL of Remote, "" without
	natsURL string
	admin   bus.User // the dashboard's own bus login when users are required
	state   *state
	limiter *limiter
	auth    *webAuth // ended sessions, login links, stream counts

	// Set once by Run before serving starts, without mu, and immutable
	// after: only the handlers, which Run starts afterwards, read them.
	// runCtx is cancelled when Run starts shutting down; handlers derive
	// their bus request contexts from it.
	runCtx context.Context
	nc     *nats.Conn
	watch  *watcher
}

// Open creates the data directory, settles the token, starts the embedded
// bus and binds the HTTP listener, then prints where to reach the dashboard.
// Port conflicts fail here, and nothing stays started when Open fails.
func (d *Dashboard) Open() error { return d.OpenContext(context.Background()) }

// OpenContext is Open; ctx bounds opening Remote (a tunnel), which may wait
// on the network.
func (d *Dashboard) OpenContext(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.opened {
		return errors.New("open dashboard: already opened")
	}
	d.defaults()
	if err := bus.ValidName(d.DefaultBot); err != nil {
		return fmt.Errorf("default bot: %w", err)
	}
	if d.NATSCA != "" {
		if d.ExternalNATS == "" {
			return ErrCAWithoutExternalNATS
		}
		if err := checkCAFile(d.NATSCA); err != nil {
			return err
		}
	}
	if err := ensureDataDir(d.DataDir); err != nil {
		return err
	}
	token, fromFile, err := d.settleToken()
	if err != nil {
		return err
	}
	viewer, err := d.settleViewer(token)
	if err != nil {
		return err
	}

	var srv *bus.Server
	if d.ExternalNATS == "" {
		if srv, err = d.startBus(); err != nil {
			return err
		}
	}
	ln, err := d.listen()
	if err != nil {
		// Nothing half-started: the bus goes down with the failed bind.
		if srv != nil {
			srv.Close()
		}
		return err
	}
	addr := ln.Addr().String()
	if d.Remote != nil {
		rln, u, err := d.openRemote(ctx)
		if err != nil {
			ln.Close()
			if srv != nil {
				srv.Close()
			}
			return fmt.Errorf("%w: %w", ErrRemote, err)
		}
		d.remote = u
		ln = joinListeners(ln, rln, d.log)
	}

	d.srv, d.ln, d.token = srv, ln, token
	d.keys = newSessionKeys(token)
	d.viewer = viewer
	d.addr = addr
	if srv != nil {
		d.natsURL = clientURL(srv.Addr(), d.BusTLSCert != "")
	} else {
		d.natsURL = bus.Redact(d.ExternalNATS)
	}
	d.host, _ = os.Hostname()
	if d.host == "" {
		d.host = "unknown-host"
	}
	d.state = newState(d.DefaultBot)
	d.limiter = newLimiter()
	d.app = d.newApp()
	d.opened = true

	if d.remote != "" {
		d.log.Info("dashboard listening", "http", d.addr, "remote", d.remote, "bus", d.natsURL)
	} else {
		d.log.Info("dashboard listening", "http", d.addr, "bus", d.natsURL)
	}
	d.printBanner(fromFile)
	return nil
}

func (d *Dashboard) defaults() {
	if d.HTTPAddr == "" {
		d.HTTPAddr = DefaultHTTPAddr
	}
	if d.NATSListen == "" {
		d.NATSListen = DefaultNATSListen
	}
	if d.DataDir == "" {
		d.DataDir = DefaultDataDir
	}
	if d.DefaultBot == "" {
		d.DefaultBot = DefaultBotName
	}
	if d.Out == nil {
		d.Out = os.Stdout
	}
	d.log = d.Logger
	if d.log == nil {
		d.log = slog.Default()
	}
	d.log = d.log.With("component", "dashboard")
}

// startBus starts the embedded bus server.
func (d *Dashboard) startBus() (*bus.Server, error) {
	host, _ := os.Hostname()
	cfg := bus.ServerConfig{
		Listen:        d.NATSListen,
		Name:          serverName(host, d.ClusterListen, d.NATSListen),
		ClusterListen: d.ClusterListen,
		ClusterName:   d.ClusterName,
		Routes:        d.Routes,
		Users:         d.Users,
		TLSCert:       d.BusTLSCert,
		TLSKey:        d.BusTLSKey,
	}
	if !d.NoHistory {
		cfg.StoreDir = filepath.Join(d.DataDir, "jetstream")
	}
	busDir := filepath.Join(d.DataDir, "bus")
	users := d.Users
	if len(users) == 0 {
		var err error
		if users, err = bus.EnsureDir(busDir); err != nil {
			return nil, fmt.Errorf("start bus: %w", err)
		}
	}
	if cfg.RouteSecret = d.RouteSecret; cfg.RouteSecret == "" && d.ClusterListen != "" {
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
		return nil, &ListenError{What: "bus", Addr: d.NATSListen, Err: err}
	}
	return srv, nil
}

// listen binds the HTTP listener, with TLS when a certificate is given.
func (d *Dashboard) listen() (net.Listener, error) {
	var cfg *tls.Config
	if d.TLSCert != "" || d.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(d.TLSCert, d.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrHTTPSCert, err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", d.HTTPAddr)
	if err != nil {
		return nil, &ListenError{What: "http", Addr: d.HTTPAddr, Err: err}
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
		if d.NATSCA != "" {
			opts = append(opts, nats.RootCAs(d.NATSCA))
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
					"bus", bus.Redact(d.ExternalNATS), "err", err)
				return
			}
			d.log.Warn("cannot reach the bus; retrying", "bus", bus.Redact(d.ExternalNATS), "err", err)
		}))
		login, err := bus.ResolveLogin(d.ExternalNATS, d.NATSNkey, "")
		if err != nil {
			return nil, err
		}
		lopts, err := login.Options()
		if err != nil {
			return nil, err
		}
		nc, err := bus.Connect(d.ExternalNATS, "lifeline-dashboard", true, append(opts, lopts...)...)
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
	return &UnreachableError{URL: bus.Redact(d.ExternalNATS), Err: err}
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

// Addr returns the HTTP address actually bound, "" before Open.
func (d *Dashboard) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// RemoteURL returns the public URL of Remote, "" before Open or without.
func (d *Dashboard) RemoteURL() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.remote
}

// NATSURL returns the client URL of the embedded bus, "" before Open.
func (d *Dashboard) NATSURL() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.natsURL
}

// AccessToken returns the token in force, "" before Open: the Token field, or
// the one read from or written to the token file. (A method cannot share the
// Token field's name.)
func (d *Dashboard) AccessToken() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.token
}

// Close releases what Open acquired when Run is not going to be called. It
// is a no-op after Run has returned, and Run must not be called after Close.
func (d *Dashboard) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.opened || d.closed {
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

// Run opens the dashboard if Open was not called, then serves until ctx is
// done. On the way out it ends live streams, shuts the HTTP server down,
// drains its bus client and stops the embedded bus. It returns nil after a
// clean stop.
func (d *Dashboard) Run(ctx context.Context) error {
	d.mu.Lock()
	opened, closed := d.opened, d.closed
	d.mu.Unlock()
	if closed {
		return errors.New("run dashboard: already closed")
	}
	if !opened {
		if err := d.OpenContext(ctx); err != nil {
			return err
		}
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
	var rec *recorder // nil without history: records nothing
	if !d.NoHistory {
		// Before subscribing, so that no event goes unrecorded.
		rec = newRecorder(d.log)
	}
	w := newWatcher(nc, d.state, d.log, rec, runCtx, &wg)
	d.runCtx, d.nc, d.watch = runCtx, nc, w
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
	if !d.NoHistory {
		wg.Go(func() { d.keepHistory(runCtx, nc, rec) })
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
	if d.TLSCert != "" {
		scheme = "https://"
	}
	base := scheme + net.JoinHostPort(shown, port)
	fmt.Fprintf(d.Out, "lifeline dashboard\n")
	fmt.Fprintf(d.Out, "  page:       %s/\n", base)
	if ip != nil && ip.IsUnspecified() {
		fmt.Fprintf(d.Out, "              %s%s/ from other machines\n", scheme, net.JoinHostPort(d.host, port))
	}
	fmt.Fprintf(d.Out, "  login:      %s  (works once, for 10 minutes)\n", d.loginURL(base))
	if d.remote != "" {
		remote := strings.TrimSuffix(d.remote, "/")
		fmt.Fprintf(d.Out, "  remote:     %s/\n", remote)
		fmt.Fprintf(d.Out, "              %s  (works once, for 10 minutes)\n", d.loginURL(remote))
	}
	if fromFile {
		fmt.Fprintf(d.Out, "  token file: %s\n", tokenPath(d.DataDir))
	} else {
		fmt.Fprintf(d.Out, "  token:      given with --token\n")
	}
	fmt.Fprintf(d.Out, "  view only:  %s\n", d.viewer.where)
	fmt.Fprintf(d.Out, "  bus:        %s\n", d.natsURL)
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
