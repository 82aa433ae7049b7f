package dashboard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go"
)

func TestTLSForHTTPAndBus(t *testing.T) {
	cert, key := bustest.SelfSigned(t)
	td := newTestDashboard(t)
	td.TLSCert, td.TLSKey, td.BusTLSCert, td.BusTLSKey = cert, key, cert, key
	if err := td.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { td.Close() })
	if !strings.Contains(td.out.String(), "https://") || !strings.HasPrefix(td.NATSURL(), "tls://") {
		t.Fatalf("banner:\n%s\nbus %s", td.out, td.NATSURL())
	}
	td.Close()

	td = newTestDashboard(t)
	td.TLSCert, td.TLSKey, td.BusTLSCert, td.BusTLSKey = cert, key, cert, key
	if err := td.Open(); err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// Its keep-alive connections would outlive the test and fail goleak.
	t.Cleanup(client.CloseIdleConnections)
	base := "https://" + td.Addr()
	td.base = base
	ctxDone := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { ctxDone <- td.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ctxDone })
	waitFor(t, "HTTPS healthz", func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// An agent reaches the TLS bus with the CA, and the dashboard sees it.
	login, err := bus.ResolveLogin(td.NATSURL(), bus.SeedFile(filepath.Join(td.DataDir, "bus"), bus.LoginAgent), "")
	if err != nil {
		t.Fatal(err)
	}
	lopts, err := login.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(td.NATSURL(), "agent", false, append(lopts, nats.RootCAs(cert))...)
	if err != nil {
		t.Fatalf("TLS bus: %v", err)
	}
	t.Cleanup(nc.Close)
	startFakeAgent(t, nc, "bot")
	waitFor(t, "status over TLS", func() bool {
		req, _ := http.NewRequest("GET", base+"/api/bot/status", nil)
		req.Header.Set("Authorization", "Bearer "+td.AccessToken())
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
