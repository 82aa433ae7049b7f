package main

// End-to-end tests of many dashboards on one clustered bus, and of the
// roles a bus with users enforces. They run the built binary, like the
// rest of the e2e harness.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterHistoryWait is how long history may take to show: a JetStream
// cluster needs several seconds to elect its leaders.
const clusterHistoryWait = 45 * time.Second

// clusterFreeAddrs returns n loopback addresses whose ports were free a
// moment ago, for flags that must be known before the process starts
// (--routes lists every dashboard's cluster address).
func clusterFreeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// clusterDash is one dashboard of the test, in its own data directory.
type clusterDash struct {
	t       *testing.T
	name    string
	proc    *e2eProc
	dir     string
	httpURL string
	natsURL string // nats://127.0.0.1:port, as agents dial it
	token   string
}

// clusterStartDash starts a dashboard with args (besides --http,
// --nats-listen and --data) and waits until it serves.
func clusterStartDash(t *testing.T, name, httpAddr, natsAddr string, args ...string) *clusterDash {
	t.Helper()
	return clusterStartDashWith(t, "", name, httpAddr, natsAddr, args...)
}

// clusterStartDashWith is clusterStartDash with a copy of bus directory
// logins (see clusterBusDir) in the dashboard's data directory, as
// operators give every dashboard of a cluster the first one's.
func clusterStartDashWith(t *testing.T, logins, name, httpAddr, natsAddr string, args ...string) *clusterDash {
	t.Helper()
	d := &clusterDash{t: t, name: name, dir: t.TempDir(), natsURL: "nats://" + natsAddr}
	if logins != "" {
		bustest.CopyBusDir(t, logins, filepath.Join(d.dir, "data"))
	}
	all := append([]string{"dashboard", "--http", httpAddr, "--nats-listen", natsAddr, "--data", "data"}, args...)
	d.proc = e2eStart(t, name, d.dir, e2eEnv(), all...)
	page := d.proc.waitOutput("page:", 20*time.Second)
	d.httpURL = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(page), "page:")), "/")
	tok, err := os.ReadFile(filepath.Join(d.dir, "data", "dashboard.token"))
	if err != nil {
		t.Fatalf("%s token file: %v", name, err)
	}
	d.token = strings.TrimSpace(string(tok))
	return d
}

// api calls d's HTTP API with its Bearer token; code 0 means no answer.
func (d *clusterDash) api(method, path string) (int, []byte) {
	req, err := http.NewRequest(method, d.httpURL+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	client := &http.Client{Timeout: 40 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// status is the default bot's status as d reports it.
func (d *clusterDash) status() (bus.Status, string) {
	code, body := d.api("GET", "/api/bot/status")
	var st bus.Status
	if code != 200 || json.Unmarshal(body, &st) != nil {
		return bus.Status{}, fmt.Sprintf("%s: HTTP %d: %s", d.name, code, body)
	}
	return st, d.name + ": " + string(body)
}

// waitStatus waits until d reports a status satisfying cond.
func (d *clusterDash) waitStatus(timeout time.Duration, what string, cond func(bus.Status) bool) bus.Status {
	d.t.Helper()
	var st bus.Status
	e2eWait(d.t, timeout, d.name+": "+what, func() (bool, string) {
		var raw string
		st, raw = d.status()
		return st.Name != "" && cond(st), raw
	})
	return st
}

// events are d's recent events (GET /api/events).
func (d *clusterDash) events() ([]bus.Event, string) {
	code, body := d.api("GET", "/api/events")
	var out struct{ Events []bus.Event }
	if code != 200 || json.Unmarshal(body, &out) != nil {
		return nil, fmt.Sprintf("HTTP %d: %s", code, body)
	}
	return out.Events, string(body)
}

// waitEvent waits until d shows an event of type typ for pid.
func (d *clusterDash) waitEvent(timeout time.Duration, typ bus.EventType, pid int) bus.Event {
	d.t.Helper()
	var found bus.Event
	e2eWait(d.t, timeout, fmt.Sprintf("%s: %s event for pid %d", d.name, typ, pid), func() (bool, string) {
		evs, raw := d.events()
		for _, ev := range evs {
			if ev.Type == typ && ev.PID == pid {
				found = ev
				return true, ""
			}
		}
		return false, raw
	})
	return found
}

// clusterStartAgent starts an agent with the demo bot in dir, connected to
// urls, with the harness's fast timings, and makes sure the bot does not
// outlive the test.
func clusterStartAgent(t *testing.T, dir, urls string) *e2eProc {
	t.Helper()
	a := e2eStart(t, "agent", dir, e2eEnv("LIFELINE_HEARTBEAT=100ms", "LIFELINE_POLL=20ms"),
		"agent", "--nats-url", urls, "--stop-bot-on-exit",
		"--heartbeat-timeout", "1s", "--stop-timeout", "3s", "--backoff-max", "200ms")
	t.Cleanup(func() {
		data, err := os.ReadFile(filepath.Join(dir, "data", "bot.pid"))
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 1 {
			e2eKill(pid)
		}
	})
	return a
}

// clusterBusDir makes the bus directory the dashboards of one cluster share:
// its logins and route secret.
func clusterBusDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bus")
	if _, err := bus.EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// clusterRunning is the condition "the bot runs under a connected agent".
func clusterRunning(st bus.Status) bool {
	return st.State == bus.StateRunning && st.PID > 0 && st.Agent.Connected
}

// TestE2EClusterFailoverRestartAndLateDashboard: losing a dashboard loses
// neither the bot nor control of it. Three clustered dashboards, an agent
// given all three; the dashboard carrying the agent is killed -9, the bot
// keeps running, the survivors see it and one restarts it; a dashboard
// started later lists the bot at once and shows the restart from the shared
// history.
func TestE2EClusterFailoverRestartAndLateDashboard(t *testing.T) {
	addrs := clusterFreeAddrs(t, 12)
	httpA, natsA, clusterA := addrs[0:4], addrs[4:8], addrs[8:12]
	var routes []string
	for _, c := range clusterA {
		routes = append(routes, "nats://"+c)
	}
	first3 := strings.Join(routes[:3], ",")

	var dashes []*clusterDash
	logins := clusterBusDir(t)
	for i := range 3 {
		dashes = append(dashes, clusterStartDashWith(t, logins, fmt.Sprintf("dashboard%d", i+1), httpA[i], natsA[i],
			"--cluster", clusterA[i], "--cluster-name", "e2e", "--routes", first3))
	}
	var urls []string
	for _, d := range dashes {
		urls = append(urls, d.natsURL)
	}
	agentDir := t.TempDir()
	bustest.CopyBusDir(t, logins, filepath.Join(agentDir, "data")) // the agent's host gets the logins too
	operatorSeed := bus.SeedFile(logins, bus.LoginOperator)
	agent := clusterStartAgent(t, agentDir, strings.Join(urls, ","))

	// Which dashboard carries the agent? Ask through any of them.
	st := dashes[0].waitStatus(30*time.Second, "bot running with its agent's bus known", func(st bus.Status) bool {
		return clusterRunning(st) && st.Agent.Bus != ""
	})
	botPID := st.PID
	if st.Agent.PID != agent.pid() {
		t.Fatalf("agent pid %d, want %d", st.Agent.PID, agent.pid())
	}
	victim := -1
	for i, d := range dashes {
		if st.Agent.Bus == d.natsURL {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("agent's bus %q is none of %v", st.Agent.Bus, urls)
	}
	var survivors []*clusterDash
	for i, d := range dashes {
		if i != victim {
			survivors = append(survivors, d)
		}
	}
	// History is kept once the JetStream cluster has elected its leaders and
	// the dashboards have made the events stream, on three servers so that
	// it survives losing one.
	clusterWaitHistory(t, strings.Join(urls, ","), operatorSeed, 3)
	t.Cleanup(func() {
		if t.Failed() {
			clusterDumpHistory(t, strings.Join(urls, ","), operatorSeed)
		}
	})

	// Every dashboard sees the bot before the failure, through the cluster.
	for _, d := range survivors {
		d.waitStatus(20*time.Second, "bot running", func(st bus.Status) bool { return clusterRunning(st) && st.PID == botPID })
	}

	killed := dashes[victim]
	killed.proc.signal(syscall.SIGKILL)
	killed.proc.wait(10 * time.Second)

	// The bot keeps its PID; the agent reconnects to a survivor; both
	// survivors show it running.
	for _, d := range survivors {
		st := d.waitStatus(30*time.Second, "agent reconnected to a survivor, bot running with the same pid", func(st bus.Status) bool {
			return clusterRunning(st) && st.Agent.Bus != "" && st.Agent.Bus != killed.natsURL
		})
		if st.PID != botPID {
			t.Fatalf("%s: bot pid %d after the failover, want %d (the bot must keep running)", d.name, st.PID, botPID)
		}
	}
	if !e2eAlive(botPID) {
		t.Fatalf("bot %d died with the dashboard", botPID)
	}
	// One survivor restarts the bot at once, while the events stream may
	// still be electing a new leader (when the old one was on the killed
	// server): the survivors keep the event until it is stored, and the
	// late dashboard below shows it. Both survivors see the new PID and the
	// event.
	code, body := survivors[0].api("POST", "/api/bot/restart")
	var r bus.Reply
	if code != 200 || json.Unmarshal(body, &r) != nil || !r.OK || r.OldPID != botPID || r.NewPID <= 0 || r.NewPID == botPID {
		t.Fatalf("restart through %s: HTTP %d %s", survivors[0].name, code, body)
	}
	e2eWaitGone(t, botPID)
	for _, d := range survivors {
		d.waitStatus(20*time.Second, "new pid", func(st bus.Status) bool { return clusterRunning(st) && st.PID == r.NewPID })
		d.waitEvent(20*time.Second, bus.EventRestarted, r.NewPID)
	}

	// A fourth dashboard started later lists the bot at once (discovery,
	// asking the agent) and shows the earlier restart from the history.
	late := clusterStartDashWith(t, logins, "dashboard4", httpA[3], natsA[3],
		"--cluster", clusterA[3], "--cluster-name", "e2e", "--routes", strings.Join(routes, ","), "--verbose")
	t.Cleanup(func() {
		if t.Failed() {
			// Where is it stuck? The Go runtime prints every goroutine.
			late.proc.signal(syscall.SIGQUIT)
			select {
			case <-late.proc.done:
			case <-time.After(5 * time.Second):
			}
		}
	})
	e2eWait(t, 5*time.Second, "dashboard4 to list the bot with its agent", func() (bool, string) {
		code, body := late.api("GET", "/api/bots")
		var list struct{ Bots []bus.Status }
		if code != 200 || json.Unmarshal(body, &list) != nil {
			return false, fmt.Sprintf("HTTP %d: %s", code, body)
		}
		for _, b := range list.Bots {
			if b.Name == "bot" && b.PID == r.NewPID && b.Agent.PID == agent.pid() {
				return true, ""
			}
		}
		return false, string(body)
	})
	ev := late.waitEvent(clusterHistoryWait, bus.EventRestarted, r.NewPID)
	if ev.RequestedBy == "" {
		t.Errorf("restarted event without requested_by: %+v", ev)
	}
	// Each survivor recorded it; the stream holds it once.
	if n := clusterCountStored(t, strings.Join(urls, ","), operatorSeed, bus.EventRestarted, r.NewPID); n != 1 {
		t.Errorf("the events stream holds the restart %d times, want once", n)
	}
	// The bot was never doubled.
	if bots := botProcesses(agentDir); len(bots) != 1 || bots[0] != r.NewPID {
		t.Fatalf("bot processes %v, want only %d", bots, r.NewPID)
	}
}

// TestE2EViewerCannotRestart runs a dashboard whose bus requires users: an
// agent logs in with its own account, a viewer may watch but not restart,
// an operator may restart; passwords never show in the CLI's messages.
func TestE2EViewerCannotRestart(t *testing.T) {
	const (
		opPass     = "operator-secret-1234"
		viewPass   = "viewer-secret-5678"
		agentPass  = "agent-secret-abcdef"
		usersLines = "# test accounts\noperator alice %s\nviewer wall %s\nagent bot-a %s bot\n"
	)
	dir := t.TempDir()
	users := filepath.Join(dir, "users.txt")
	if err := os.WriteFile(users, fmt.Appendf(nil, usersLines, opPass, viewPass, agentPass), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := clusterFreeAddrs(t, 2)
	d := clusterStartDash(t, "dashboard", addrs[0], addrs[1], "--nats-users", users, "--no-history")
	hostport := strings.TrimPrefix(d.natsURL, "nats://")
	url := func(user, pass string) string { return "nats://" + user + ":" + pass + "@" + hostport }

	// Without credentials the bus refuses the agent's account-less login.
	if nc, err := nats.Connect(d.natsURL, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted by a bus with users")
	}

	agentDir := t.TempDir()
	clusterStartAgent(t, agentDir, url("bot-a", agentPass))
	pid := d.waitStatus(30*time.Second, "bot running", clusterRunning).PID

	// The viewer may ask for status, not restart.
	viewer, err := nats.Connect(d.natsURL, nats.UserInfo("wall", viewPass), nats.CustomInboxPrefix(bus.InboxPrefix("wall")),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatalf("viewer login: %v", err)
	}
	defer viewer.Close()
	if msg, err := viewer.Request(bus.AgentSubject("bot", bus.OpStatus), nil, 5*time.Second); err != nil || !strings.Contains(string(msg.Data), `"running"`) {
		t.Fatalf("viewer status: %v", err)
	}
	if msg, err := viewer.Request(bus.AgentSubject("bot", bus.OpRestart), nil, 3*time.Second); err == nil {
		t.Fatalf("viewer restart answered: %s", msg.Data)
	}
	// The CLI with viewer credentials fails too, and never prints the password.
	out, errOut, code := clusterCLI(t, agentDir, "restart", "--timeout", "3s", "--nats-url", url("wall", viewPass))
	if code == 0 || strings.Contains(out+errOut, viewPass) {
		t.Fatalf("viewer CLI restart: code %d\n%s%s", code, out, errOut)
	}
	if st, raw := d.status(); st.PID != pid || st.Restarts != 0 {
		t.Fatalf("after the viewer's attempts the bot changed: %s", raw)
	}

	// The operator may restart, over the bus and with the CLI.
	op, err := nats.Connect(d.natsURL, nats.UserInfo("alice", opPass), nats.CustomInboxPrefix(bus.InboxPrefix("alice")))
	if err != nil {
		t.Fatalf("operator login: %v", err)
	}
	defer op.Close()
	msg, err := op.Request(bus.AgentSubject("bot", bus.OpRestart), nil, 30*time.Second)
	var r bus.Reply
	if err != nil || json.Unmarshal(msg.Data, &r) != nil || !r.OK || r.OldPID != pid {
		t.Fatalf("operator restart: %v %v", err, msg)
	}
	d.waitStatus(20*time.Second, "restarted bot", func(st bus.Status) bool { return clusterRunning(st) && st.PID == r.NewPID })
	out, errOut, code = clusterCLI(t, agentDir, "restart", "--nats-url", url("alice", opPass))
	if code != 0 || strings.Contains(out+errOut, opPass) {
		t.Fatalf("operator CLI restart: code %d\n%s%s", code, out, errOut)
	}

	// Over HTTP, a viewer token (when the dashboard has them) sees but
	// cannot act.
	_, body := d.api("GET", "/api/session")
	if !strings.Contains(string(body), `"role"`) {
		t.Log("HTTP viewer check skipped: /api/session has no role yet")
		return
	}
	vt, err := os.ReadFile(filepath.Join(d.dir, "data", "dashboard.viewer.token"))
	if err != nil {
		t.Fatalf("viewer token file: %v", err)
	}
	viewerHTTP := *d
	viewerHTTP.token = strings.TrimSpace(string(vt))
	if code, body := viewerHTTP.api("GET", "/api/session"); code != 200 || !strings.Contains(string(body), `"role":"viewer"`) {
		t.Fatalf("viewer session: HTTP %d %s", code, body)
	}
	before, _ := d.status()
	if st, raw := viewerHTTP.status(); st.PID != before.PID {
		t.Fatalf("viewer status: %s", raw)
	}
	for _, path := range []string{"/api/bot/restart", "/api/bots/bot/restart", "/api/bots/bot/stop", "/api/bots/bot/start"} {
		if code, body := viewerHTTP.api("POST", path); code != http.StatusForbidden {
			t.Errorf("viewer POST %s: HTTP %d %s, want 403", path, code, body)
		}
	}
	if st, raw := d.status(); st.PID != before.PID || st.Restarts != before.Restarts {
		t.Fatalf("the viewer's POSTs changed the bot: %s", raw)
	}
}

// TestE2EClusterRefusesOpenBus: a cluster port beyond loopback without route
// credentials does not start, and the message says how to give them;
// conflicting flags are usage errors.
func TestE2EClusterRefusesOpenBus(t *testing.T) {
	addrs := clusterFreeAddrs(t, 3)
	_, port, _ := net.SplitHostPort(addrs[1])
	_, cport, _ := net.SplitHostPort(addrs[2])
	dir := t.TempDir()
	users := filepath.Join(dir, "users.txt")
	if err := os.WriteFile(users, []byte("operator alice correct-horse-battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e2eStart(t, "dashboard", dir, e2eEnv(), "dashboard", "--http", addrs[0], "--nats-listen", "0.0.0.0:"+port,
		"--cluster", "0.0.0.0:"+cport, "--nats-users", users, "--data", "data")
	if code := p.wait(15 * time.Second); code != exitFailure || !strings.Contains(p.out.String(), "--cluster-secret") {
		t.Fatalf("open cluster port: exit %d, want %d with advice to pass --cluster-secret:\n%s", code, exitFailure, p.out)
	}
	for _, args := range [][]string{
		{"--nats-url", "nats://127.0.0.1:4222", "--cluster", "127.0.0.1:6222"},
		{"--nats-url", "nats://127.0.0.1:4222", "--nats-listen", "127.0.0.1:4222"},
		{"--nats-url", "nats://127.0.0.1:4222", "--nats-users", "users.txt"},
		{"--routes", "nats://127.0.0.1:6222"},
		{"--cluster", "127.0.0.1:6222", "--routes", "127.0.0.1:6223"},
		{"--tls-cert", "cert.pem"},
	} {
		p := e2eStart(t, "dashboard", dir, e2eEnv(), append([]string{"dashboard", "--data", "data"}, args...)...)
		if code := p.wait(15 * time.Second); code != exitUsage {
			t.Errorf("dashboard %v: exit %d, want %d:\n%s", args, code, exitUsage, p.out)
		}
	}
	// From the environment too: LIFELINE_NATS_URL with --cluster.
	p = e2eStart(t, "dashboard", dir, e2eEnv("LIFELINE_NATS_URL=nats://u:hidden-password@127.0.0.1:4222"), "dashboard", "--data", "data", "--cluster", "127.0.0.1:6222")
	if code := p.wait(15 * time.Second); code != exitUsage || strings.Contains(p.out.String(), "hidden-password") {
		t.Errorf("LIFELINE_NATS_URL with --cluster: exit %d, want %d, no password:\n%s", code, exitUsage, p.out)
	}
}

// clusterWaitHistory waits until the bus at urls keeps the events stream
// on replicas servers, every replica placed and caught up, so that losing
// any one server keeps a quorum.
func clusterWaitHistory(t *testing.T, urls, seed string, replicas int) {
	t.Helper()
	nc := e2eConnect(t, urls, seed)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e2eWait(t, clusterHistoryWait, fmt.Sprintf("events stream on %d servers", replicas), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "LIFELINE_EVENTS")
		if err != nil {
			return false, err.Error()
		}
		info := s.CachedInfo()
		if info.Config.Replicas != replicas || info.Cluster == nil || info.Cluster.Leader == "" {
			return false, fmt.Sprintf("replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
		}
		current := 0
		var seen []string
		for _, p := range info.Cluster.Replicas {
			seen = append(seen, fmt.Sprintf("%s current=%v offline=%v", p.Name, p.Current, p.Offline))
			if p.Current && !p.Offline {
				current++
			}
		}
		return current == replicas-1, fmt.Sprintf("leader %s, peers %v", info.Cluster.Leader, seen)
	})
}

// clusterCountStored counts the events of type typ for pid that the events
// stream holds.
func clusterCountStored(t *testing.T, urls, seed string, typ bus.EventType, pid int) int {
	t.Helper()
	nc := e2eConnect(t, urls, seed)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "LIFELINE_EVENTS")
	if err != nil {
		t.Fatalf("events stream: %v", err)
	}
	n := 0
	st := s.CachedInfo().State
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("events stream message %d: %v", seq, err)
		}
		if ev, err := bus.DecodeEvent(m.Data); err == nil && ev.Type == typ && ev.PID == pid {
			n++
		}
	}
	return n
}

// clusterDumpHistory logs what the events stream holds, to tell a lost
// event from one a dashboard did not read.
func clusterDumpHistory(t *testing.T, urls, seed string) {
	nc := e2eConnect(t, urls, seed)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "LIFELINE_EVENTS")
	if err != nil {
		t.Logf("history: %v", err)
		return
	}
	info := s.CachedInfo()
	t.Logf("history: state %+v cluster %+v", info.State, info.Cluster)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		if m, err := s.GetMsg(ctx, seq); err == nil {
			t.Logf("history %d: %s", seq, m.Data)
		}
	}
}

// clusterCLI runs a client command in dir with a clean environment.
func clusterCLI(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := e2eStart(t, "cli "+args[0], dir, e2eEnv(), args...)
	code = p.wait(60 * time.Second)
	out := p.out.String()
	return out, "", code
}
