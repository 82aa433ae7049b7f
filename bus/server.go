package bus

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Listen is host:port for clients; port 0 picks a free one.
	Listen string
	// Name identifies the server in cluster and monitoring output.
	Name string
	// Verbose turns on the server's own logging.
	Verbose bool

	// ClusterListen (host:port) joins this server to other dashboards'
	// servers into one NATS cluster named ClusterName, dialling Routes
	// (nats://host:port URLs of their cluster ports).
	ClusterListen string
	ClusterName   string
	Routes        []string
	// RouteSecret is the password every server of the cluster presents on
	// its routes and demands on its cluster port, so no other server can
	// join. Required when the cluster port listens beyond loopback.
	RouteSecret string

	// StoreDir turns on JetStream, keeping its data there.
	StoreDir string

	// Users must log in; with none, only loopback listeners are allowed.
	Users []User

	// TLSCert and TLSKey (PEM files) make clients connect with TLS.
	TLSCert, TLSKey string
}

// Server is an embedded NATS server.
type Server struct {
	*server.Server
}

// ErrServerNotReady is returned when the embedded server does not accept
// connections in time (usually because its port is taken).
var ErrServerNotReady = errors.New("bus server not ready")

// ErrClusterNeedsRoutes is returned when a clustered server with a store
// (JetStream) has neither routes nor a fixed cluster port to route to itself:
// clustered JetStream insists on routes.
var ErrClusterNeedsRoutes = errors.New("a clustered bus with history needs routes (or a fixed cluster port)")

// StartServer starts an embedded NATS server and waits until it accepts
// connections. The server never installs signal handlers: the process that
// embeds it owns SIGINT and SIGTERM.
func StartServer(cfg ServerConfig) (*Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("bus listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("bus listen address %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	// Probe the port first: the server only logs a bind failure, so without
	// this a port in use would surface as a vague readiness timeout.
	if port != server.RANDOM_PORT {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("bus listen on %s: %w", cfg.Listen, err)
		}
		ln.Close()
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       port,
		NoSigs:     true,
		NoLog:      !cfg.Verbose,
		MaxPayload: 1 << 20,
	}
	if err := configure(opts, cfg, host); err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus server: %w", err)
	}
	if cfg.Verbose {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("%w on %s within 10s", ErrServerNotReady, cfg.Listen)
	}
	return &Server{s}, nil
}

// configure applies clustering, JetStream and users to opts.
func configure(opts *server.Options, cfg ServerConfig, host string) error {
	clusterHost := ""
	if cfg.ClusterListen != "" {
		h, p, err := net.SplitHostPort(cfg.ClusterListen)
		if err != nil {
			return fmt.Errorf("cluster listen address %q: %w", cfg.ClusterListen, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil || port < 0 || port > 65535 {
			return fmt.Errorf("cluster listen address %q: bad port", cfg.ClusterListen)
		}
		if port == 0 {
			port = server.RANDOM_PORT
		}
		name := cfg.ClusterName
		if name == "" {
			name = "lifeline"
		}
		clusterHost = h
		// Routes to a server cut off by the network are dropped within
		// seconds, not minutes, so requests stop going to its stale
		// subscriptions (an agent that has already failed over).
		opts.Cluster = server.ClusterOpts{Name: name, Host: h, Port: port, ConnectRetries: -1,
			PingInterval: time.Second, MaxPingsOut: 3}
		if cfg.RouteSecret != "" {
			opts.Cluster.Username, opts.Cluster.Password = routeUser, cfg.RouteSecret
		} else if !isLoopback(h) {
			return ErrNoRouteCredentials
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(strings.TrimSpace(r))
			if err != nil || u.Host == "" {
				return fmt.Errorf("route %q: want nats://host:port", r)
			}
			opts.Routes = append(opts.Routes, withRouteLogin(u, cfg.RouteSecret))
		}
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey})
		if err != nil {
			return fmt.Errorf("bus TLS: %w", err)
		}
		opts.TLSConfig, opts.TLS = tc, true
	}
	if cfg.StoreDir != "" {
		opts.JetStream = true
		opts.StoreDir = cfg.StoreDir
		if cfg.ClusterListen != "" && len(opts.Routes) == 0 {
			// Clustered JetStream insists on routes; the first server of a
			// cluster routes to itself (servers ignore such a route).
			if opts.Cluster.Port == server.RANDOM_PORT {
				return ErrClusterNeedsRoutes
			}
			opts.Routes = []*url.URL{withRouteLogin(&url.URL{Scheme: "nats", Host: cfg.ClusterListen}, cfg.RouteSecret)}
		}
	}
	if len(cfg.Users) == 0 {
		if !isLoopback(host) || (clusterHost != "" && !isLoopback(clusterHost)) {
			return ErrNoCredentials
		}
		return nil
	}
	for _, u := range cfg.Users {
		perms, err := Permissions(u)
		if err != nil {
			return fmt.Errorf("bus user %s: %w", u.Name, err)
		}
		if u.NKey != "" {
			opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: u.NKey, Permissions: perms})
		} else {
			opts.Users = append(opts.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: perms})
		}
	}
	return nil
}

// routeUser is the user name servers of one cluster log in to each other's
// cluster ports with; the secret is the password.
const routeUser = "lifeline-route"

// withRouteLogin returns route u carrying the cluster's login, which the
// server presents when it dials the route.
func withRouteLogin(u *url.URL, secret string) *url.URL {
	if secret == "" {
		return u
	}
	c := *u
	c.User = url.UserPassword(routeUser, secret)
	return &c
}

// ClusterURL is the nats://host:port other servers route to, or "" when
// the server is not clustered.
func (s *Server) ClusterURL() string {
	addr := s.ClusterAddr()
	if addr == nil {
		return ""
	}
	return "nats://" + addr.String()
}

// Close shuts the server down and waits until it has stopped.
func (s *Server) Close() {
	s.Shutdown()
	s.WaitForShutdown()
}
