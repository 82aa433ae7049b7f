//go:build ngrok

package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/dashboard"
)

// The live tunnel needs the internet and an ngrok account, so these tests
// stop short of it: they check the wiring up to the connection to ngrok's
// service, which a loopback listener plays.

const testAuthtoken = "2test-ngrok-authtoken-never-shown-0123456789"

// fakeNgrokService accepts connections as ngrok's service would and drops
// them at once, counting them; it points ngrokConnectURL at itself.
func fakeNgrokService(t *testing.T) *atomic.Int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	old := ngrokConnectURL
	ngrokConnectURL = ln.Addr().String()
	t.Cleanup(func() { ngrokConnectURL = old })
	return &n
}

// TestNgrokWithoutAuthtoken: --ngrok with no NGROK_AUTHTOKEN is one line,
// exit 1, before anything starts.
func TestNgrokWithoutAuthtoken(t *testing.T) {
	clearEnv(t)
	t.Setenv("NGROK_AUTHTOKEN", "")
	data := filepath.Join(t.TempDir(), "data")
	wantOneLine(t, "--ngrok", runCLI(t, "dashboard", "--ngrok", "--data", data), exitFailure,
		"NGROK_AUTHTOKEN is not set", "export NGROK_AUTHTOKEN=")
	t.Setenv("LIFELINE_NGROK", "yes")
	wantOneLine(t, "LIFELINE_NGROK", runCLI(t, "dashboard", "--data", data), exitFailure, "NGROK_AUTHTOKEN")
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data dir was made: %v", err)
	}
	if r := runCLI(t, "dashboard", "--help"); !strings.Contains(r.stdout, "--ngrok") || strings.Contains(r.stdout, "TAGS=ngrok") {
		t.Errorf("dashboard --help of an ngrok build:\n%s", r.stdout)
	}
}

// TestNgrokRemoteConnects: the tunnel factory reaches for the ngrok service
// with the authtoken, gives up when its context ends, and its error never
// shows the authtoken.
func TestNgrokRemoteConnects(t *testing.T) {
	clearEnv(t)
	n := fakeNgrokService(t)
	t.Setenv("NGROK_AUTHTOKEN", testAuthtoken)
	// The SDK's goroutines may still log a moment after Listen returned.
	logs := &e2eOutput{}
	r, err := newNgrokRemote("test", slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	ln, _, err := r.Listen(ctx)
	if err == nil {
		ln.Close()
		t.Fatal("Listen succeeded against a service that drops every connection")
	}
	if n.Load() == 0 {
		t.Error("the ngrok service was never dialled")
	}
	if strings.Contains(err.Error(), testAuthtoken) || strings.Contains(logs.String(), testAuthtoken) {
		t.Errorf("the authtoken shows in the error or the logs")
	}
}

// TestNgrokDashboardWiring: `lifeline dashboard --ngrok` opens the tunnel
// after binding its ports and before printing anything; Ctrl+C while the
// tunnel is still connecting stops it cleanly, with every port released,
// and the authtoken never shows.
func TestNgrokDashboardWiring(t *testing.T) {
	clearEnv(t)
	n := fakeNgrokService(t)
	t.Setenv("NGROK_AUTHTOKEN", testAuthtoken)
	httpAddr, busAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Written to by the SDK's goroutines, which may log a moment after run
	// has returned.
	stdout, stderr := &e2eOutput{}, &e2eOutput{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dashboard", "--ngrok", "--verbose", "--http", httpAddr, "--nats-listen", busAddr,
			"--data", filepath.Join(t.TempDir(), "data")}, stdout, stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() == 0 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the tunnel was never attempted; exit %d, stderr:\n%s", <-done, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The dashboard's own ports are bound while the tunnel opens.
	if ln, err := net.Listen("tcp", httpAddr); err == nil {
		ln.Close()
		t.Error("the HTTP port is not bound while the tunnel opens")
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after Ctrl+C, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the dashboard did not stop")
	}
	if strings.Contains(stdout.String(), "page:") {
		t.Errorf("the banner was printed for a dashboard that never served:\n%s", stdout.String())
	}
	for _, addr := range []string{httpAddr, busAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken: %v", addr, err)
			continue
		}
		ln.Close()
	}
	if strings.Contains(stdout.String()+stderr.String(), testAuthtoken) {
		t.Error("the authtoken shows in the output")
	}
	var _ dashboard.RemoteListener = &ngrokRemote{}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
