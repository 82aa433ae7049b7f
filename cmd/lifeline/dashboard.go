package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard"
)

// dashboardSummary is the one line `lifeline --help` says about the dashboard.
const dashboardSummary = "Run the dashboard: the bus (embedded NATS), the web page and the HTTP API."

// DashboardCommand runs the dashboard, the embedded bus, the page and the
// API: `lifeline dashboard`.
type DashboardCommand struct {
	env *env

	HTTP       string
	NATSListen string
	Data       string
	Token      string
	DefaultBot string
	Verbose    bool

	Cluster     string
	ClusterName string
	Routes      string
	NATSUsers   string
	ClusterKey  string
	NATSNkey    string
	NoHistory   bool
	NATSURL     string
	TLSCert     string
	TLSKey      string
	NATSTLSCert string
	NATSTLSKey  string
	NATSCA      string
	ViewerToken string
	Ngrok       bool
	Alerts      alertFlag // see alert.go
	AlertFile   string
	AlertTest   bool
	PublicURL   string

	given map[string]bool // flags set on the command line or from the environment
}

// flagSet defines the dashboard's flags on c's fields.
func (c *DashboardCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("dashboard")
	fs.StringVar(&c.HTTP, "http", dashboard.DefaultHTTPAddr, "Address of the web page and HTTP API.")
	fs.StringVar(&c.NATSListen, "nats-listen", dashboard.DefaultNATSListen, "Address of the embedded NATS server (the bus) that agents and bots connect to.")
	fs.StringVar(&c.Data, "data", dashboard.DefaultDataDir, "Directory for dashboard.token.")
	fs.StringVar(&c.Token, "token", "", "Require token `T` for the page and the API (default: the one in --data/dashboard.token, generated there on first start).")
	fs.StringVar(&c.ViewerToken, "viewer-token", "", "Read-only token `T`: the page without its buttons and every GET of the API, but no restart, stop or start (default: the one in --data/dashboard.viewer.token, generated there on first start). 16 characters or more, not the --token; better given in the environment than on the command line, which ps shows to everyone on the host.")
	fs.StringVar(&c.DefaultBot, "default-bot", dashboard.DefaultBotName, "Bot that /api/bot/status and /api/bot/restart act on.")
	fs.BoolVar(&c.Verbose, "verbose", false, "Log at debug level.")
	fs.StringVar(&c.Cluster, "cluster", "", "Join other dashboards' buses into one NATS cluster, listening for them on `ADDR` (host:port), for example 0.0.0.0:6222.")
	fs.StringVar(&c.ClusterName, "cluster-name", "lifeline", "Name of the NATS cluster; every dashboard of one cluster gives the same `NAME`.")
	fs.StringVar(&c.Routes, "routes", "", "Other dashboards' --cluster addresses as nats://host:port, comma-separated (`URL[,URL]`); listing this dashboard's own is fine, so every dashboard can get the same list.")
	fs.StringVar(&c.NATSUsers, "nats-users", "", "Bus logins from `FILE`, instead of the nkey seed files the dashboard keeps in --data/bus/: one account a line, ROLE USER PASSWORD [BOT] or ROLE USER NKEY [BOT] (roles operator, viewer, agent, bot; passwords of 12+ characters; NKEY a user public key from nk -gen user -pubout).")
	fs.StringVar(&c.ClusterKey, "cluster-secret", "", "Password the cluster's servers present to each other on their routes, read from `FILE` (default: --data/bus/route.secret, which the dashboard creates unless --nats-users is given). Required when --cluster listens beyond loopback.")
	fs.StringVar(&c.NATSNkey, "nats-nkey", "", "With --nats-url: log in to the existing NATS with the nkey seed in `FILE`.")
	fs.BoolVar(&c.NoHistory, "no-history", false, "Keep no JetStream history of lifecycle events (the page shows live events only).")
	fs.StringVar(&c.NATSURL, "nats-url", "", "Use an existing NATS at `URL[,URL]` instead of embedding one (log in with --nats-nkey, or a password in the URL given through the environment); not with --nats-listen, --cluster, --routes or --nats-users.")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "Serve the page and API over HTTPS with this certificate `FILE` (PEM), with --tls-key.")
	fs.StringVar(&c.TLSKey, "tls-key", "", "Private key `FILE` (PEM) of --tls-cert.")
	fs.StringVar(&c.NATSTLSCert, "nats-tls-cert", "", "Make the embedded bus require TLS with this certificate `FILE` (PEM), with --nats-tls-key; clients then use tls:// URLs (and --nats-ca for a private CA).")
	fs.StringVar(&c.NATSTLSKey, "nats-tls-key", "", "Private key `FILE` (PEM) of --nats-tls-cert.")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "With --nats-url: trust the bus's TLS certificate when signed by the CA in `FILE` (PEM). Not needed, and refused, without --nats-url: the dashboard reaches its embedded bus in-process.")
	fs.BoolVar(&c.Ngrok, "ngrok", false, ngrokUsage)
	fs.Var(&c.Alerts, "alert", "Send alerts (a bot crashed, hung, entered backoff, lost its agent, runs again) to notification `URL`, in shoutrrr's format: generic+https://... (any webhook), slack://, telegram://, discord://, teams://, smtp://, ntfy:// or gotify://. Repeatable; in the environment comma-separated. URLs hold secrets: better given in the environment or --alert-file than on the command line.")
	fs.StringVar(&c.AlertFile, "alert-file", "", "Alert URLs from `FILE`, one a line (# comments), besides --alert.")
	fs.BoolVar(&c.AlertTest, "alert-test", false, "Send one test message to each alert URL and exit: status 0 when all were sent, 1 otherwise.")
	fs.StringVar(&c.PublicURL, "public-url", "", "The page's address as operators reach it (`URL`, e.g. https://lifeline.example.com), linked from alerts.")
	return fs
}

// Usage prints `lifeline dashboard --help`.
func (c *DashboardCommand) Usage() {
	writeHelp(c.env.stdout, "lifeline dashboard [flags]", dashboardSummary, `The dashboard embeds the bus (a NATS server) that agents and bots connect to,
serves the web page with the Emergency Bot Controls, and the HTTP API. It prints
a one-time login link (good for 10 minutes) and where the access token is when
it starts. Stopping it (Ctrl+C) never stops a bot.

Several dashboards join their buses into one NATS cluster with --cluster and
--routes: agents, bots and CLIs given all their bus URLs fail over when one
dashboard dies, and every dashboard shows the same bots and history. With
--nats-url the dashboard embeds no server and uses an existing NATS instead.

The bus takes no anonymous client, loopback included. On first start the
dashboard writes its logins to --data/bus/ (nkey seed files, private to this
user): operator.nk, viewer.nk, agent.nk, bot.nk, and route.secret for a
cluster. Agents, bots and commands started in the same directory find them by
themselves; elsewhere give them a copy (--nats-nkey). The dashboards of one
cluster share one bus/ directory: copy the first one's into the others' --data
before they start.

Two tokens guard the page and the API: the access token (--token) may do
everything, the viewer token (--viewer-token) may only watch. Both are printed
or named at start and never logged. --ngrok also serves the page on a public
ngrok URL, behind the same tokens.

Examples:
  lifeline dashboard
  lifeline dashboard --http 127.0.0.1:9000 --nats-listen 0.0.0.0:4222
  LIFELINE_TOKEN=$(openssl rand -hex 32) lifeline dashboard
  lifeline dashboard --nats-listen 0.0.0.0:4222 --cluster 0.0.0.0:6222 \
      --routes nats://dash-a:6222,nats://dash-b:6222,nats://dash-c:6222
  lifeline dashboard --nats-url nats://nats.example:4222 --nats-nkey dashboard.nk --no-history
  LIFELINE_NATS_URL=tls://lifeline:s3cret-password@nats.example:4222 lifeline dashboard --nats-ca ca.pem
  lifeline dashboard --tls-cert site.pem --tls-key site.key --nats-tls-cert bus.pem --nats-tls-key bus.key
  LIFELINE_VIEWER_TOKEN=$(openssl rand -hex 32) lifeline dashboard
  NGROK_AUTHTOKEN=... lifeline dashboard --ngrok     # also on a public https URL

A users file (--nats-users), instead of the seed files of --data/bus/:
  operator alice  correct-horse-battery
  viewer   wall   UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4
  agent    bot-a  another-long-secret  bot`,
		(&DashboardCommand{}).flagSet(), "http", "nats-listen", "data", "token", "viewer-token", "default-bot",
		"cluster", "cluster-name", "routes", "cluster-secret", "nats-users", "no-history", "nats-url", "nats-nkey", "nats-ca",
		"tls-cert", "tls-key", "nats-tls-cert", "nats-tls-key", "ngrok", "alert", "alert-file", "alert-test", "public-url", "verbose")
}

// ParseFlags fills c from args and the LIFELINE_* environment, and refuses
// addresses and names that cannot work, before anything starts.
func (c *DashboardCommand) ParseFlags(args []string) error {
	fs := c.flagSet()
	rest, err := parseArgs(fs, args, false)
	if err != nil {
		return usageErr("dashboard", err)
	}
	if len(rest) > 0 {
		return usageErr("dashboard", fmt.Errorf("unexpected argument %q", rest[0]))
	}
	// Visit sees flags from the environment too: setFromEnvironment sets
	// them with fs.Set.
	c.given = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { c.given[f.Name] = true })
	return usageErr("dashboard", c.validate())
}

// validate refuses addresses and names that cannot work.
func (c *DashboardCommand) validate() error {
	for _, a := range []struct{ flag, addr string }{{"--http", c.HTTP}, {"--nats-listen", c.NATSListen}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q: want HOST:PORT, for example 127.0.0.1:8000", a.flag, a.addr)
		}
	}
	if err := bus.ValidName(c.DefaultBot); err != nil {
		return fmt.Errorf("--default-bot: %w", err)
	}
	if c.NATSURL != "" {
		for _, f := range []string{"nats-listen", "cluster", "routes", "nats-users", "nats-tls-cert", "nats-tls-key"} {
			if c.given[f] {
				return fmt.Errorf("--nats-url uses an existing NATS and embeds none: --%s does not go with it", f)
			}
		}
		for _, u := range splitList(c.NATSURL) {
			if err := checkURL(u, "nats", "tls", "ws", "wss"); err != nil {
				return fmt.Errorf("--nats-url %q: %w", bus.Redact(u), err)
			}
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--public-url %q: want http(s)://host[/path]", redactURLs(c.PublicURL))
		}
	}
	if c.NATSCA != "" && c.NATSURL == "" {
		return errors.New("--nats-ca goes with --nats-url (an existing NATS using TLS with a private CA); the embedded bus needs none, as the dashboard reaches it in-process (agents, bots and the CLI take --nats-ca for it)")
	}
	if c.Token != "" {
		// A short token is refused, not warned about: anyone who reaches
		// the page could guess it.
		if err := dashboard.CheckToken(c.Token); err != nil {
			return tokenFlagErr(err)
		}
	}
	if c.ViewerToken != "" {
		if err := dashboard.CheckViewerToken(c.ViewerToken, c.Token); err != nil {
			return tokenFlagErr(err)
		}
	}
	if c.Cluster != "" {
		if _, _, err := net.SplitHostPort(c.Cluster); err != nil {
			return fmt.Errorf("--cluster %q: want HOST:PORT, for example 0.0.0.0:6222", c.Cluster)
		}
	}
	if c.Routes != "" && c.Cluster == "" {
		return errors.New("--routes needs --cluster (this dashboard's own cluster address)")
	}
	for _, r := range splitList(c.Routes) {
		if err := checkURL(r, "nats"); err != nil {
			return fmt.Errorf("--routes %q: %w", r, err)
		}
	}
	if strings.TrimSpace(c.ClusterName) == "" || strings.ContainsAny(c.ClusterName, " \t.*>") {
		return fmt.Errorf("--cluster-name %q: want a word such as lifeline (no spaces, dots, * or >)", c.ClusterName)
	}
	for _, pair := range [][2]string{{"tls-cert", "tls-key"}, {"nats-tls-cert", "nats-tls-key"}} {
		a, b := c.given[pair[0]] && c.flagValue(pair[0]) != "", c.given[pair[1]] && c.flagValue(pair[1]) != ""
		if a != b {
			return fmt.Errorf("--%s and --%s go together: give both", pair[0], pair[1])
		}
	}
	return nil
}

// tokenFlagErr says which flag gave a token the dashboard refused, and how
// to make a good one when it is too short. A token file that holds the
// access token as the viewer token is to be deleted, so a new one is made.
func tokenFlagErr(err error) error {
	var te *dashboard.TokenError
	if !errors.As(err, &te) {
		return err
	}
	if te.Path != "" {
		return &advice{err: err, todo: "delete the file so a new one is made"}
	}
	flag := "--token"
	if te.Viewer {
		flag = "--viewer-token"
	}
	if errors.Is(te.Err, dashboard.ErrTokenTooShort) {
		return fmt.Errorf("check %s: %w (openssl rand -hex 32 makes a good one)", flag, te.Err)
	}
	return fmt.Errorf("check %s: %w", flag, te.Err)
}

// flagValue returns the value of the file flags checked in pairs.
func (c *DashboardCommand) flagValue(name string) string {
	switch name {
	case "tls-cert":
		return c.TLSCert
	case "tls-key":
		return c.TLSKey
	case "nats-tls-cert":
		return c.NATSTLSCert
	case "nats-tls-key":
		return c.NATSTLSKey
	}
	return ""
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkURL accepts scheme://host:port with one of schemes.
func checkURL(s string, schemes ...string) error {
	want := fmt.Sprintf("want %s://host:port", schemes[0])
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return errors.New(want)
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || u.Scheme == sc
	}
	if !ok {
		return errors.New(want)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return errors.New(want)
	}
	return nil
}

// The two ways --ngrok is refused before anything starts.
var (
	errNgrokNotBuilt = &advice{err: errors.New("--ngrok: this lifeline was built without ngrok"),
		todo: "build one with it: make build TAGS=ngrok (or go build -tags ngrok ./cmd/lifeline)"}
	errNgrokNoAuthtoken = &advice{err: errors.New("--ngrok needs an ngrok authtoken and NGROK_AUTHTOKEN is not set"),
		todo: "export NGROK_AUTHTOKEN=<yours> (from https://dashboard.ngrok.com/get-started/your-authtoken), or start without --ngrok"}
)

// Run parses args and serves until ctx is done.
func (c *DashboardCommand) Run(ctx context.Context, args []string) error {
	if err := c.ParseFlags(args); err != nil {
		return err
	}
	e := c.env
	level := slog.LevelInfo
	if c.Verbose {
		level = slog.LevelDebug
	}
	logger := e.logger(level)
	// Before anything starts: a build without ngrok, or no authtoken, is
	// refused here.
	var remote dashboard.RemoteListener
	if c.Ngrok {
		var err error
		if remote, err = newNgrokRemote(e.version, logger); err != nil {
			return err
		}
	}
	var users []bus.User
	if c.NATSUsers != "" {
		var err error
		if users, err = bus.ReadUsers(c.NATSUsers); err != nil {
			return advise(err, "fix --nats-users: one account a line, ROLE USER PASSWORD [BOT]")
		}
		if len(users) == 0 {
			return advise(fmt.Errorf("--nats-users %s lists no accounts", c.NATSUsers), "add some: one a line, ROLE USER PASSWORD [BOT]")
		}
	}
	var routeSecret string
	if c.ClusterKey != "" {
		b, err := os.ReadFile(c.ClusterKey)
		if err != nil {
			return advise(fmt.Errorf("--cluster-secret: %w", err), "give a file holding the cluster's route password (every dashboard of the cluster the same)")
		}
		if routeSecret = strings.TrimSpace(string(b)); len(routeSecret) < 16 {
			return usageErr("dashboard", fmt.Errorf("--cluster-secret %s: the password is shorter than 16 characters", c.ClusterKey))
		}
	}
	alerts, err := c.alertURLs()
	if err != nil {
		return err
	}
	if c.AlertTest {
		return c.alertTest(alerts)
	}
	cfg := dashboard.Config{
		Alerts:        alerts,
		PublicURL:     c.PublicURL,
		RouteSecret:   routeSecret,
		NATSNkey:      c.NATSNkey,
		HTTPAddr:      c.HTTP,
		NATSListen:    c.NATSListen,
		DataDir:       c.Data,
		Token:         c.Token,
		ViewerToken:   c.ViewerToken,
		DefaultBot:    c.DefaultBot,
		Version:       e.version,
		Logger:        logger,
		Out:           e.stdout,
		ClusterListen: c.Cluster,
		ClusterName:   c.ClusterName,
		Routes:        splitList(c.Routes),
		Users:         users,
		NoHistory:     c.NoHistory,
		ExternalNATS:  c.NATSURL,
		NATSCA:        c.NATSCA,
		TLSCert:       c.TLSCert,
		TLSKey:        c.TLSKey,
		BusTLSCert:    c.NATSTLSCert,
		BusTLSKey:     c.NATSTLSKey,
		Remote:        remote,
	}
	// Bind before serving, so a port conflict is reported as such and
	// nothing else has started.
	d, err := dashboard.Open(ctx, cfg)
	if err != nil {
		var listen *dashboard.ListenError
		switch {
		case errors.Is(err, dashboard.ErrRemote):
			// Before the port cases: a tunnel's errors are the network's.
			if ctx.Err() != nil {
				return nil // Ctrl+C while the tunnel was opening: nothing started
			}
			return &advice{err: err, todo: "check the network and NGROK_AUTHTOKEN, or start without --ngrok"}
		case errors.Is(err, bus.ErrNoRouteCredentials):
			return &advice{err: fmt.Errorf("refusing to start: the cluster port (--cluster %s) would take any server as a route", c.Cluster),
				todo: "copy data/bus/ from the first dashboard into this one's --data before it starts (it holds route.secret), or pass --cluster-secret FILE, or listen on 127.0.0.1"}
		case errors.Is(err, bus.ErrNoCredentials):
			return &advice{err: fmt.Errorf("refusing to start: the bus (--nats-listen %s, --cluster %q) would listen beyond loopback with nobody required to log in", c.NATSListen, c.Cluster),
				todo: "pass --nats-users FILE (one account a line: ROLE USER PASSWORD [BOT]), or listen on 127.0.0.1"}
		case errors.Is(err, bus.ErrClusterNeedsRoutes):
			return &advice{err: err, todo: "pass --routes, or a fixed --cluster port, or --no-history"}
		case errors.As(err, new(*dashboard.TokenError)):
			return tokenFlagErr(err)
		case errors.As(err, &listen) && listen.What == "http":
			return &advice{err: err, todo: "choose another address with --http"}
		case errors.As(err, &listen):
			return &advice{err: err, todo: "choose another address with --nats-listen"}
		case errors.As(err, new(*dashboard.DataDirError)):
			return &advice{err: err, todo: "choose another with --data"}
		case errors.Is(err, dashboard.ErrHTTPSCert):
			return &advice{err: err, todo: "check --tls-cert and --tls-key"}
		case errors.Is(err, dashboard.ErrBusCA), errors.Is(err, dashboard.ErrNoCACert):
			return &advice{err: err, todo: "check --nats-ca"}
		case errors.Is(err, dashboard.ErrAlertURL):
			return &advice{err: err, todo: "check --alert, --alert-file and $LIFELINE_ALERT (see the README's Alerts)"}
		case errors.Is(err, dashboard.ErrCAWithoutExternalNATS):
			return &advice{err: err, todo: "give --nats-ca only with --nats-url"}
		case addrInUse(err):
			return advise(err, "another process uses that port: stop it, or choose another with --http / --nats-listen / --cluster")
		case errors.Is(err, fs.ErrPermission):
			return advise(err, "make the data directory ("+c.Data+") writable by this user, or pick a port above 1023")
		default:
			return advise(err, "check --http, --nats-listen and --data")
		}
	}
	if err := d.Run(ctx); err != nil {
		var unreachable *dashboard.UnreachableError
		switch {
		case errors.As(err, &unreachable) && unreachable.UnknownCA():
			return &advice{err: err, todo: "pass --nats-ca FILE with that CA"}
		case errors.As(err, &unreachable):
			return &advice{err: err, todo: "check --nats-url"}
		}
		return advise(err, "the dashboard stopped; agents and bots keep running, start it again")
	}
	return nil
}
