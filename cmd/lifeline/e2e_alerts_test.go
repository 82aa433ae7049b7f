package main

// End-to-end tests of alerts: the built binary, a real agent and demo bot,
// and a real HTTP receiver standing for a chat service, reached through a
// generic+http:// notification URL.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go/jetstream"
)

// alertReceiver keeps every message posted to it.
type alertReceiver struct {
	url  string
	mu   sync.Mutex
	msgs []string
	// hold, when set, is the text of a message whose first delivery is
	// held unanswered and not kept, until release is closed: the test
	// kills its sender meanwhile.
	hold    string
	held    chan struct{}
	release chan struct{}
}

func startAlertReceiver(t *testing.T) *alertReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &alertReceiver{url: "generic+http://" + ln.Addr().String() + "/hook/s3cret-hook-token",
		held: make(chan struct{}), release: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		if r.hold != "" && strings.Contains(string(body), r.hold) {
			r.hold = ""
			r.mu.Unlock()
			close(r.held)
			select {
			case <-r.release:
			case <-req.Context().Done():
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.msgs = append(r.msgs, string(body))
		r.mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(func() {
		select {
		case <-r.release:
		default:
			close(r.release)
		}
	})
	return r
}

func (r *alertReceiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// count counts the messages containing s.
func (r *alertReceiver) count(s string) int {
	n := 0
	for _, m := range r.messages() {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// alertsQueued is how many alerts the work-queue stream still holds:
// a message leaves it only when a dashboard has sent it and acked it.
func alertsQueued(t *testing.T, urls, seed string) (n int, replicated bool, seen string) {
	nc := e2eConnect(t, urls, seed)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "LIFELINE_ALERTS")
	if err != nil {
		return -1, false, err.Error()
	}
	info := s.CachedInfo()
	replicated = info.Config.Replicas == 3 && info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == 2
	return int(info.State.Msgs), replicated, fmt.Sprintf("msgs %d, replicas %d, cluster %+v", info.State.Msgs, info.Config.Replicas, info.Cluster)
}

func TestE2EAlertTest(t *testing.T) {
	r := startAlertReceiver(t)
	dir := t.TempDir()
	p := e2eStart(t, "alert-test", dir, e2eEnv("LIFELINE_ALERT="+r.url), "dashboard", "--alert-test", "--public-url", "https://lifeline.example.com")
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("--alert-test exited %d: %s", code, p.out)
	}
	if r.count("test message") != 1 || r.count("https://lifeline.example.com") != 1 {
		t.Errorf("receiver got %q", r.messages())
	}
	down := "generic+http://" + clusterFreeAddrs(t, 1)[0] + "/hook/s3cret-hook-token"
	p = e2eStart(t, "alert-test-down", dir, e2eEnv(), "dashboard", "--alert-test", "--alert", r.url, "--alert", down)
	if code := p.wait(20 * time.Second); code != 1 {
		t.Fatalf("--alert-test with a receiver down exited %d, want 1: %s", code, p.out)
	}
	if out := p.out.String(); !strings.Contains(out, "#2") || strings.Contains(out, "s3cret-hook-token") {
		t.Errorf("--alert-test output should name #2 and hide its secret: %s", out)
	}
}

// TestE2EAlertClusterSendsOnceThoughADashboardIsKilled: three clustered
// dashboards, all given the same alert URL, an agent given all three. The
// bot is killed; the dashboard sending the alert is killed -9 while the
// receiver holds its request: the receiver still gets exactly one crash
// alert (from another dashboard) and one recovery.
func TestE2EAlertClusterSendsOnceThoughADashboardIsKilled(t *testing.T) {
	r := startAlertReceiver(t)
	addrs := clusterFreeAddrs(t, 9)
	httpA, natsA, clusterA := addrs[0:3], addrs[3:6], addrs[6:9]
	var routes, urls []string
	for _, c := range clusterA {
		routes = append(routes, "nats://"+c)
	}
	logins := clusterBusDir(t)
	var dashes []*clusterDash
	for i := range 3 {
		d := clusterStartDashWith(t, logins, fmt.Sprintf("dashboard%d", i+1), httpA[i], natsA[i],
			"--cluster", clusterA[i], "--cluster-name", "e2e", "--routes", strings.Join(routes, ","),
			"--alert", r.url, "--public-url", "https://lifeline.example.com", "--verbose")
		dashes = append(dashes, d)
		urls = append(urls, d.natsURL)
	}
	all := strings.Join(urls, ",")
	operatorSeed := bus.SeedFile(logins, bus.LoginOperator)
	agentDir := t.TempDir()
	bustest.CopyBusDir(t, logins, filepath.Join(agentDir, "data"))
	clusterStartAgent(t, agentDir, all)
	st := dashes[0].waitStatus(30*time.Second, "bot running with its agent's bus known", func(st bus.Status) bool {
		return clusterRunning(st) && st.Agent.Bus != ""
	})
	// The alert queue on three servers, so it survives losing one.
	e2eWait(t, clusterHistoryWait, "alert stream on 3 servers", func() (bool, string) {
		n, replicated, seen := alertsQueued(t, all, operatorSeed)
		return n == 0 && replicated, seen
	})
	// And its consumer, which the operator's login may not read: the
	// dashboard that replicated both says so.
	e2eWait(t, clusterHistoryWait, "alert consumer on 3 servers", func() (bool, string) {
		for _, d := range dashes {
			if strings.Contains(d.proc.out.String(), "alert queue replicated") {
				return true, ""
			}
		}
		return false, ""
	})
	// Every dashboard sees the bot running under its agent: each would
	// alert.
	for _, d := range dashes {
		d.waitStatus(20*time.Second, "bot running", func(s bus.Status) bool { return clusterRunning(s) && s.PID == st.PID })
	}
	r.mu.Lock()
	r.hold = " crashed: "
	r.mu.Unlock()
	e2eKill(st.PID)
	select {
	case <-r.held:
	case <-time.After(60 * time.Second):
		t.Fatalf("no crash alert came; receiver got %q", r.messages())
	}
	victim := -1
	e2eWait(t, 10*time.Second, "the sender's log line", func() (bool, string) {
		for i, d := range dashes {
			if strings.Contains(d.proc.out.String(), "sending alert") {
				victim = i
			}
		}
		return victim >= 0, ""
	})
	dashes[victim].proc.signal(syscall.SIGKILL)
	dashes[victim].proc.wait(10 * time.Second)
	close(r.release)

	e2eWait(t, 60*time.Second, "one crash alert and one recovery", func() (bool, string) {
		return r.count(" crashed: ") >= 1 && r.count("running again") >= 1, fmt.Sprintf("%q", r.messages())
	})
	e2eWait(t, 60*time.Second, "the alert queue to empty", func() (bool, string) {
		n, _, seen := alertsQueued(t, all, operatorSeed)
		return n == 0, seen
	})
	if r.count(" crashed: ") != 1 || r.count("running again") != 1 || len(r.messages()) != 2 {
		t.Fatalf("receiver got %q, want one crash and one recovery", r.messages())
	}
	for _, m := range r.messages() {
		if !strings.Contains(m, "https://lifeline.example.com") {
			t.Errorf("message %q lacks the page link", m)
		}
	}
	for _, d := range dashes {
		if strings.Contains(d.proc.out.String(), "s3cret-hook-token") {
			t.Errorf("%s printed the alert URL's secret", d.name)
		}
	}
}

// TestE2EAlertKillHangAgentLost: one dashboard, a real agent and demo bot.
// The bot killed -9, then frozen (SIGSTOP: hung), then its agent killed
// -9 and started again: each is one alert, then one recovery.
func TestE2EAlertKillHangAgentLost(t *testing.T) {
	r := startAlertReceiver(t)
	addrs := clusterFreeAddrs(t, 2)
	logins := clusterBusDir(t)
	d := clusterStartDashWith(t, logins, "dashboard", addrs[0], addrs[1], "--alert", r.url, "--public-url", "https://lifeline.example.com")
	agentDir := t.TempDir()
	bustest.CopyBusDir(t, logins, filepath.Join(agentDir, "data"))
	agent := clusterStartAgent(t, agentDir, d.natsURL)
	st := d.waitStatus(30*time.Second, "bot running", clusterRunning)

	want := func(n int, what string) {
		t.Helper()
		e2eWait(t, 60*time.Second, what, func() (bool, string) {
			return len(r.messages()) >= n, fmt.Sprintf("%q", r.messages())
		})
		msgs := r.messages()
		if len(msgs) != n || !strings.Contains(msgs[n-1], what) || !strings.Contains(msgs[n-1], "Bot bot on host ") {
			t.Fatalf("after %q the receiver has %q", what, msgs)
		}
	}
	e2eKill(st.PID)
	want(1, "crashed: signal killed")
	want(2, "running again")

	st = d.waitStatus(30*time.Second, "a new bot running", func(s bus.Status) bool { return clusterRunning(s) && s.PID != st.PID })
	e2eFreeze(t, st.PID)
	want(3, "hung")
	want(4, "running again")

	agent.signal(syscall.SIGKILL)
	agent.wait(10 * time.Second)
	want(5, "lost its agent")
	clusterStartAgent(t, agentDir, d.natsURL) // adopts the bot, still running
	want(6, "running again")
	if strings.Contains(d.proc.out.String(), "s3cret-hook-token") {
		t.Error("the dashboard printed the alert URL's secret")
	}
}
