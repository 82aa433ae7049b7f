package dashboard

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// Defaults for the Config fields left empty; cmd's flags use them too.
const (
	DefaultHTTPAddr   = "0.0.0.0:8000"
	DefaultNATSListen = "127.0.0.1:4222"
	DefaultDataDir    = "./data"
	DefaultBotName    = "bot"
)

// Config holds every setting of a dashboard. Open takes a copy, so changing
// a Config after Open changes nothing.
type Config struct {
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
	// in-process, with no TLS to verify, so Validate refuses it without.
	NATSCA string
	// TLSCert and TLSKey (PEM files) serve the page and API over HTTPS.
	TLSCert, TLSKey string
	// BusTLSCert and BusTLSKey (PEM files) make the embedded bus require TLS.
	BusTLSCert, BusTLSKey string
	// Remote, if set, is opened by Open after the HTTP listener and serves
	// the same page and API (an ngrok tunnel, for remote access); its URL is
	// printed with the local one, and it is closed when the dashboard stops.
	Remote RemoteListener

	// Alerts are notification URLs in shoutrrr's format, of the services
	// in alertServices (generic+https://, slack://, telegram://, smtp://,
	// ...), told when a bot crashes, hangs, enters backoff, loses its
	// agent, and when it runs again (alerts.go). They may hold secrets:
	// never logged or shown in full.
	Alerts []string
	// PublicURL is the page's address as operators reach it, linked from
	// alerts; "" links nothing.
	PublicURL string
	// AlertStable is how long a bot must run cleanly before its recovery
	// is sent (default DefaultAlertStable); AlertRetry the first wait
	// before a failed delivery is retried (default DefaultAlertRetry).
	AlertStable, AlertRetry time.Duration

	// Out is where the page URL, login URL (with the token) and token file are
	// printed for the operator; default os.Stdout. It is never the logger, so
	// the token does not end up in log collectors.
	Out io.Writer
}

// withDefaults returns c with every empty field that has a default set to it.
func (c Config) withDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.NATSListen == "" {
		c.NATSListen = DefaultNATSListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.DefaultBot == "" {
		c.DefaultBot = DefaultBotName
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate refuses settings that cannot work together, before anything is
// created or started; empty fields count as their defaults. It checks the
// NATSCA file too, so a wrong one fails at start rather than on every
// reconnect. Open calls it.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := bus.ValidName(c.DefaultBot); err != nil {
		return fmt.Errorf("default bot: %w", err)
	}
	if _, err := newAlertTargets(c.Alerts); err != nil {
		return err
	}
	if c.NATSCA != "" {
		if c.ExternalNATS == "" {
			return ErrCAWithoutExternalNATS
		}
		if err := checkCAFile(c.NATSCA); err != nil {
			return err
		}
	}
	return nil
}
