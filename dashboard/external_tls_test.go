package dashboard

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go"
)

// TestExistingNATSWithPrivateCA: an existing NATS using TLS with a private
// CA is reached with NATSCA (--nats-ca), and only with it.
func TestExistingNATSWithPrivateCA(t *testing.T) {
	cert, key := bustest.SelfSigned(t)
	url := startExternalTLSNATS(t, cert, key)

	// The agent's side: the same CA, the same option as agents and CLIs use.
	nc, err := bus.Connect(url, "agent", false, nats.RootCAs(cert))
	if err != nil {
		t.Fatalf("agent cannot reach the TLS NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	agent := startFakeAgent(t, nc, "bot")

	t.Run("without the CA", func(t *testing.T) {
		td := newTestDashboard(t)
		td.ExternalNATS, td.NoHistory = url, true
		if err := td.Open(); err != nil {
			t.Fatal(err)
		}
		// The dashboard cannot subscribe, stops, and says why and what to do.
		errc := make(chan error, 1)
		go func() { errc <- td.Run(context.Background()) }()
		select {
		case err := <-errc:
			if ue := (*UnreachableError)(nil); !errors.As(err, &ue) || !ue.UnknownCA() || !strings.Contains(err.Error(), "unknown CA") {
				t.Fatalf("Run: %v, want the unknown CA explained", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run kept going on a bus it cannot trust")
		}
		if !strings.Contains(td.logs.String(), "unknown CA; pass --nats-ca") {
			t.Errorf("the log does not name --nats-ca:\n%s", td.logs)
		}
	})

	t.Run("with the CA", func(t *testing.T) {
		td := newTestDashboard(t)
		td.ExternalNATS, td.NATSCA, td.NoHistory = url, cert, true
		mustRun(t, td)
		waitFor(t, "bot seen through the TLS NATS", func() bool {
			r := call(t, "GET", td.base+"/api/bot/status", bearer(td.AccessToken()), nil)
			return r.code == 200 && strings.Contains(string(r.body), `"connected":true`)
		})
		r := call(t, "POST", td.base+"/api/bot/restart", bearer(td.AccessToken()), nil)
		if r.code != 200 || len(agent.commands()) != 1 {
			t.Fatalf("restart through the TLS NATS: %d %s", r.code, r.body)
		}
		if strings.Contains(td.logs.String(), "cannot reach the bus") {
			t.Errorf("the dashboard complained about a bus it reached:\n%s", td.logs)
		}
	})
}

// TestNATSCARefusedWhereItMeansNothing: the embedded bus is reached
// in-process, so a CA for it is a mistake; a CA file that holds no
// certificate is refused at Open, before anything starts.
func TestNATSCARefusedWhereItMeansNothing(t *testing.T) {
	cert, _ := bustest.SelfSigned(t)
	td := newTestDashboard(t)
	td.NATSCA = cert
	if err := td.Open(); err == nil {
		td.Close()
		t.Fatal("Open accepted a bus CA without an existing NATS")
	} else if !errors.Is(err, ErrCAWithoutExternalNATS) {
		t.Errorf("error does not explain: %v", err)
	}

	for name, content := range map[string]string{"empty": "", "not PEM": "hello\n"} {
		path := t.TempDir() + "/ca.pem"
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		td := newTestDashboard(t)
		td.ExternalNATS, td.NATSCA = "tls://127.0.0.1:1", path
		if err := td.Open(); err == nil {
			td.Close()
			t.Errorf("%s CA file accepted", name)
		} else if !errors.Is(err, ErrNoCACert) {
			t.Errorf("%s CA file: error is not ErrNoCACert: %v", name, err)
		}
		if entries, _ := os.ReadDir(td.DataDir); len(entries) != 0 {
			t.Errorf("%s CA file: Open wrote into the data dir before refusing", name)
		}
	}
	td = newTestDashboard(t)
	td.ExternalNATS, td.NATSCA = "tls://127.0.0.1:1", t.TempDir()+"/missing.pem"
	if err := td.Open(); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		if err == nil {
			td.Close()
		}
		t.Errorf("missing CA file: %v", err)
	}
}
