//go:build linux

package main

// GET /metrics against the real binary: a dashboard, an agent and its demo
// bot, and a bot that is killed, hung and stopped.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// e2eScrape GETs /metrics with the given Authorization header ("" for none).
func (s *e2eStack) e2eScrape(auth string) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest("GET", s.httpURL+"/metrics", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// e2eSeries returns the value of the first series whose name and labels, as
// printed, start with prefix.
func e2eSeries(body []byte, prefix string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// waitMetric scrapes until every series prefix has its wanted value.
func (s *e2eStack) waitMetric(what string, want map[string]float64) []byte {
	s.t.Helper()
	var body []byte
	e2eWait(s.t, 20*time.Second, what, func() (bool, string) {
		var code int
		code, body = s.e2eScrape("Bearer " + s.token)
		if code != http.StatusOK {
			return false, fmt.Sprintf("HTTP %d: %s", code, body)
		}
		for p, v := range want {
			if got, ok := e2eSeries(body, p); !ok || got != v {
				return false, fmt.Sprintf("%s = %v (found %v), want %v", p, got, ok, v)
			}
		}
		return true, ""
	})
	return body
}

func TestE2EMetrics(t *testing.T) {
	s := e2eNewStack(t)
	first := s.running()

	// Only the dashboard's tokens open it.
	if code, body := s.e2eScrape(""); code != http.StatusUnauthorized || bytes.Contains(body, []byte("lifeline_bot")) {
		t.Fatalf("no token: HTTP %d %s", code, body)
	}
	if code, _ := s.e2eScrape("Bearer " + strings.Repeat("a", 43)); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: HTTP %d", code)
	}
	viewer, err := os.ReadFile(s.data("dashboard.viewer.token"))
	if err != nil {
		t.Fatalf("viewer token: %v", err)
	}
	if code, body := s.e2eScrape("Bearer " + strings.TrimSpace(string(viewer))); code != http.StatusOK || !bytes.Contains(body, []byte(`lifeline_bot_up{bot="bot",`)) {
		t.Fatalf("viewer token: HTTP %d %s", code, body)
	}

	body := s.waitMetric("running bot", map[string]float64{
		`lifeline_bot_up{bot="bot",`:                    1,
		`lifeline_bot_state{bot="bot",state="running"}`: 1,
		`lifeline_bot_restarts_total{bot="bot"}`:        0,
	})
	if rss, ok := e2eSeries(body, `lifeline_bot_resident_memory_bytes{bot="bot"}`); !ok || rss < 1<<20 {
		t.Errorf("bot memory %v (found %v)", rss, ok)
	}
	if age, ok := e2eSeries(body, `lifeline_bot_heartbeat_age_seconds{bot="bot"}`); !ok || age > 1 {
		t.Errorf("heartbeat age %v (found %v)", age, ok)
	}
	for _, name := range []string{"lifeline_bot_cpu_percent{", "go_goroutines ", "process_resident_memory_bytes "} {
		if !bytes.Contains(body, []byte("\n"+name)) {
			t.Errorf("no %s", name)
		}
	}
	// The real binary's scrape passes Prometheus's linter (client_golang,
	// linked into this test only), but for the missing HELP texts of the
	// library's go_* and process_* metrics.
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("lint scrape: %v", err)
	}
	for _, p := range problems {
		if p.Text != "no help text" || strings.HasPrefix(p.Metric, "lifeline_") {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}

	// kill -9: restarted, one restart and one crash more.
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	s.waitMetric("restart counted after kill -9", map[string]float64{
		`lifeline_bot_restarts_total{bot="bot"}`:          1,
		`lifeline_events_total{bot="bot",type="crashed"}`: 1,
		`lifeline_bot_state{bot="bot",state="running"}`:   1,
		`lifeline_bot_up{bot="bot",`:                      1,
	})
	second := s.running()

	// Hung (stopped, so no heartbeat): counted, killed, restarted.
	if err := syscall.Kill(second.PID, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s.waitMetric("hang counted", map[string]float64{
		`lifeline_events_total{bot="bot",type="hung"}`:  1,
		`lifeline_bot_restarts_total{bot="bot"}`:        2,
		`lifeline_bot_state{bot="bot",state="running"}`: 1,
	})

	// Stopped on request: not up, state stopped; started again: up.
	if code, body := s.api("POST", "/api/bots/bot/stop"); code != http.StatusOK {
		t.Fatalf("stop: HTTP %d %s", code, body)
	}
	s.waitMetric("stopped bot", map[string]float64{
		`lifeline_bot_up{bot="bot",`:                    0,
		`lifeline_bot_state{bot="bot",state="stopped"}`: 1,
		`lifeline_bot_state{bot="bot",state="running"}`: 0,
	})
	if code, body := s.api("POST", "/api/bots/bot/start"); code != http.StatusOK {
		t.Fatalf("start: HTTP %d %s", code, body)
	}
	body = s.waitMetric("started again", map[string]float64{
		`lifeline_bot_up{bot="bot",`:                    1,
		`lifeline_bot_state{bot="bot",state="running"}`: 1,
		`lifeline_bot_state{bot="bot",state="stopped"}`: 0,
	})
	// A counter never goes down (the agent counts the requested start too).
	if n, ok := e2eSeries(body, `lifeline_bot_restarts_total{bot="bot"}`); !ok || n < 2 {
		t.Errorf("restarts_total %v (found %v) after start, want at least 2", n, ok)
	}
}
