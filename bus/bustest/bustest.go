// Package bustest starts real embedded NATS servers for tests, the way
// httptest starts real HTTP servers.
package bustest

import (
	"testing"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

// NewServer starts an embedded NATS server on a random loopback port and
// stops it when the test ends.
func NewServer(tb testing.TB) *bus.Server {
	tb.Helper()
	s, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: tb.Name()})
	if err != nil {
		tb.Fatalf("start bus: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// MustConnect connects a client to s and closes it when the test ends.
func MustConnect(tb testing.TB, s *bus.Server) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatalf("connect to bus: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}
