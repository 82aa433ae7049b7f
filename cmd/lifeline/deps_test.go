package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// linkedPackages lists the packages the lifeline binary links: `go list
// -deps` of the main package, which leaves test-only dependencies out.
func linkedPackages(t *testing.T) []string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot list the binary's dependencies")
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// The lifeline binary links no Prometheus library: client_golang with its
// protobuf and procfs dependencies and their package inits cost every
// start ~4-5 ms (each `lifeline status`, each respawned bot), so /metrics
// is written with VictoriaMetrics/metrics, and client_golang is kept for
// tests, which lint the exposition with it.
func TestMetricsNoPrometheusLinked(t *testing.T) {
	deps := linkedPackages(t)
	var linked []string
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/prometheus/") {
			linked = append(linked, p)
		}
	}
	if len(linked) > 0 {
		t.Errorf("the lifeline binary links %d Prometheus packages (a start cost for every command); first: %v",
			len(linked), linked[:min(5, len(linked))])
	}
	if !slices.Contains(deps, "github.com/VictoriaMetrics/metrics") {
		t.Errorf("the lifeline binary does not link github.com/VictoriaMetrics/metrics: where does /metrics come from?")
	}
}

// The lifeline binary links shoutrrr's service packages one by one, the
// services the README documents, never its router (nor the root package,
// which imports it): the router links all ~25 services, whose package
// inits (zulip's and teams' regexps, ...) cost every start ~3.5 ms.
func TestAlertsNoShoutrrrRouterLinked(t *testing.T) {
	const shoutrrr = "github.com/nicholas-fedor/shoutrrr"
	documented := []string{
		"specialized/generic", "chat/slack", "chat/telegram", "chat/discord",
		"chat/teams", "email/smtp", "push/ntfy", "push/gotify",
	}
	deps := linkedPackages(t)
	for _, p := range deps {
		switch {
		case p == shoutrrr, p == shoutrrr+"/pkg/router":
			t.Errorf("the lifeline binary links %s, and with it every shoutrrr service's init: build senders from the service packages (dashboard/alertservices.go)", p)
		case strings.HasPrefix(p, shoutrrr+"/pkg/services/"):
			svc := strings.TrimPrefix(p, shoutrrr+"/pkg/services/")
			if svc != "standard" && !slices.Contains(documented, svc) {
				t.Errorf("the lifeline binary links shoutrrr service %s, which the README does not document: its init costs every start", svc)
			}
		}
	}
	for _, svc := range documented {
		if !slices.Contains(deps, shoutrrr+"/pkg/services/"+svc) {
			t.Errorf("the lifeline binary does not link shoutrrr service %s, which the README documents", svc)
		}
	}
}
