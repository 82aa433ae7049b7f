//go:build ngrok

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/lifeline-dev/lifeline/dashboard"
	"golang.ngrok.com/ngrok/v2"
)

// This file links ngrok's agent SDK, and only builds with -tags ngrok:
// the SDK's package initialisation (protobuf among it) would otherwise slow
// down every start of the binary, and every agent, bot and `lifeline status`
// is a start of it. ngrok_off.go stands in for it in the default build.

const ngrokUsage = "Also serve the page and API on a public ngrok URL (printed at start; the same tokens guard it), for operators outside the network. Needs an ngrok authtoken in $NGROK_AUTHTOKEN; the tunnel closes with the dashboard."

// ngrokConnectURL, when set, is the ngrok service the agent connects to
// instead of ngrok's own (host:port): tests point it at a loopback listener.
var ngrokConnectURL string

// ngrokCloseTimeout bounds telling ngrok the tunnel is gone, so a dashboard
// cut off from the internet still stops promptly.
const ngrokCloseTimeout = 5 * time.Second

// ngrokRemote opens the dashboard's ngrok tunnel. It holds the authtoken,
// which it never logs and never puts in an error.
type ngrokRemote struct {
	authtoken string
	version   string
	log       *slog.Logger
}

// newNgrokRemote returns the tunnel --ngrok asks for, or an error, before
// anything starts, when NGROK_AUTHTOKEN is not set.
func newNgrokRemote(version string, log *slog.Logger) (dashboard.RemoteListener, error) {
	token, ok := lookupEnv("NGROK_AUTHTOKEN")
	if !ok {
		return nil, errNgrokNoAuthtoken
	}
	return &ngrokRemote{authtoken: token, version: version, log: log.With("component", "ngrok")}, nil
}

// Listen connects to ngrok and opens an endpoint on a random public https
// URL. Closing the listener closes the endpoint and the agent's session.
func (r *ngrokRemote) Listen(ctx context.Context) (net.Listener, string, error) {
	opts := []ngrok.AgentOption{
		ngrok.WithAuthtoken(r.authtoken),
		ngrok.WithClientInfo("lifeline", r.version),
		ngrok.WithLogger(r.log),
	}
	if ngrokConnectURL != "" {
		opts = append(opts, ngrok.WithAgentConnectURL(ngrokConnectURL))
	}
	agent, err := ngrok.NewAgent(opts...)
	if err != nil {
		return nil, "", err
	}
	ln, err := agent.Listen(ctx, ngrok.WithDescription("lifeline dashboard"))
	if err != nil {
		agent.Disconnect()
		return nil, "", fmt.Errorf("ngrok: %s", oneOfEach(err))
	}
	return &ngrokListener{EndpointListener: ln, agent: agent}, ln.URL().String(), nil
}

// oneOfEach shortens the SDK's error after repeated attempts, the same cause
// once per attempt joined with "; ", to each cause once.
func oneOfEach(err error) string {
	var parts []string
	for p := range strings.SplitSeq(err.Error(), "; ") {
		if !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

// ngrokListener is the endpoint as a net.Listener whose Close also ends
// the agent's session with ngrok.
type ngrokListener struct {
	ngrok.EndpointListener
	agent ngrok.Agent
}

func (l *ngrokListener) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ngrokCloseTimeout)
	defer cancel()
	return errors.Join(l.CloseWithContext(ctx), l.agent.Disconnect())
}
