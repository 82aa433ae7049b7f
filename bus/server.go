package bus

import (
	"errors"
	"fmt"
	"net"
	"strconv"
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
}

// Server is an embedded NATS server.
type Server struct {
	*server.Server
}

// ErrServerNotReady is returned when the embedded server does not accept
// connections in time (usually because its port is taken).
var ErrServerNotReady = errors.New("bus server not ready")

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

// Close shuts the server down and waits until it has stopped.
func (s *Server) Close() {
	s.Shutdown()
	s.WaitForShutdown()
}
