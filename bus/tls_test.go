package bus_test

import (
	"testing"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go"
)

func TestBusRequiresTLSWhenGivenACertificate(t *testing.T) {
	cert, key := bustest.SelfSigned(t)
	s, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", TLSCert: cert, TLSKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	nc, err := bus.Connect(s.ClientURL(), "tls test", false, nats.RootCAs(cert))
	if err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	nc.Close()
	// A client that does not trust the certificate is refused.
	if nc, err := bus.Connect(s.ClientURL(), "untrusting", false); err == nil {
		nc.Close()
		t.Fatal("client without the CA connected")
	}
	if _, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", TLSCert: cert, TLSKey: "/nonexistent"}); err == nil {
		t.Fatal("missing key accepted")
	}
}
