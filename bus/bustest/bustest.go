// Package bustest starts real embedded NATS servers for tests, the way
// httptest starts real HTTP servers.
package bustest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

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

// RawPublish publishes payload on subject over a bare TCP connection, past
// the client library's own size check, and returns the server's answer: the
// "-ERR ..." line it refused the message with, or "PONG" once it has taken
// it. Tests use it to send what no well-behaved client can.
func RawPublish(tb testing.TB, s *bus.Server, subject string, payload []byte) string {
	tb.Helper()
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		tb.Fatalf("dial bus: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") {
		tb.Fatalf("bus greeting %q: %v", line, err)
	}
	// The server reads the PUB line, checks the size and answers at once
	// when it is too large, so the payload is written in the background: the
	// server may close the connection before reading it.
	written := make(chan struct{})
	go func() {
		defer close(written)
		fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPUB %s %d\r\n", subject, len(payload))
		conn.Write(payload)
		io.WriteString(conn, "\r\nPING\r\n")
	}()
	defer func() {
		conn.Close() // ends a write the server stopped reading
		<-written
	}()
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "-ERR"), line == "PONG":
			return line
		case err != nil:
			tb.Fatalf("read bus answer: %v", err)
		}
	}
}
