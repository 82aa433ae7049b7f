package dashboard

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

// startExternalNATS runs a NATS server in a separate process and returns its
// client URL.
func startExternalNATS(t *testing.T) string {
	t.Helper()
	return "nats://" + startExternalServer(t)
}

// startExternalTLSNATS runs a NATS server requiring TLS with cert and key in
// a separate process, and returns its tls:// URL.
func startExternalTLSNATS(t *testing.T, cert, key string) string {
	t.Helper()
	return "tls://" + startExternalServer(t, "LIFELINE_TEST_NATS_TLS_CERT="+cert, "LIFELINE_TEST_NATS_TLS_KEY="+key)
}

// startExternalServer starts the test binary as runExternalServer (see
// TestMain), with env added, and returns its address once it is ready.
func startExternalServer(t *testing.T, env ...string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LIFELINE_TEST_NATS_SERVER="+addr, "LIFELINE_TEST_NATS_STORE="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("external NATS server: %q %v", line, err)
	}
	return addr
}

func TestExistingNATSInsteadOfEmbedded(t *testing.T) {
	url := startExternalNATS(t)
	td := newTestDashboard(t)
	td.ExternalNATS = url
	mustRun(t, td)
	if td.srv != nil {
		t.Fatal("an embedded server was started")
	}
	if !strings.Contains(td.out.String(), url) {
		t.Fatalf("banner does not name the bus %s:\n%s", url, td.out)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	agent := startFakeAgent(t, nc, "bot")
	waitFor(t, "bot seen through the existing NATS", func() bool {
		r := call(t, "GET", td.base+"/api/bot/status", bearer(td.AccessToken()), nil)
		return r.code == 200 && strings.Contains(string(r.body), `"connected":true`)
	})
	r := call(t, "POST", td.base+"/api/bot/restart", bearer(td.AccessToken()), nil)
	if r.code != 200 || len(agent.commands()) != 1 {
		t.Fatalf("restart through the existing NATS: %d %s", r.code, r.body)
	}
	// History lives in the existing NATS's JetStream.
	publishEvent(t, nc, bus.Event{Time: time.Now().UTC(), Name: "bot", Type: bus.EventCrashed, PID: 9, Reason: "external-history"})
	waitFor(t, "event seen", func() bool { return hasEvent(t, td, "external-history") })
}
