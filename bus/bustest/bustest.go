// Package bustest starts real embedded NATS servers for tests, the way
// httptest starts real HTTP servers.
package bustest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
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

// SelfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths; the certificate is its own CA.
func SelfSigned(tb testing.TB) (certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lifeline test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// CopyBusDir copies the bus directory from (logins, see bus.EnsureDir) into
// dataDir/bus, where a dashboard on dataDir looks for it, before that
// dashboard starts: every dashboard of a cluster must share the first one's
// logins.
func CopyBusDir(tb testing.TB, from, dataDir string) {
	tb.Helper()
	to := filepath.Join(dataDir, "bus")
	if err := os.MkdirAll(to, 0o700); err != nil {
		tb.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(to, e.Name()), b, 0o600)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}
