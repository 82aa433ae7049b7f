package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The lifeline binary links no Prometheus library: client_golang with its
// protobuf and procfs dependencies and their package inits cost every
// start ~4-5 ms (each `lifeline status`, each respawned bot), so /metrics
// is written with VictoriaMetrics/metrics, and client_golang is kept for
// tests, which lint the exposition with it. `go list -deps` of the main
// package leaves test-only dependencies out.
func TestMetricsNoPrometheusLinked(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot list the binary's dependencies")
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	var linked []string
	for p := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(p, "github.com/prometheus/") {
			linked = append(linked, p)
		}
	}
	if len(linked) > 0 {
		t.Errorf("the lifeline binary links %d Prometheus packages (a start cost for every command); first: %v",
			len(linked), linked[:min(5, len(linked))])
	}
	if !strings.Contains(string(out), "\ngithub.com/VictoriaMetrics/metrics\n") {
		t.Errorf("the lifeline binary does not link github.com/VictoriaMetrics/metrics: where does /metrics come from?")
	}
}
