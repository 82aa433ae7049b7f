package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// partitionNet is three network namespaces on one bridge: three hosts with
// their own addresses, one of which a test can cut off.
type partitionNet struct {
	t      *testing.T
	bridge string
	subnet string // "10.231.N"
	ns     []string
}

// newPartitionNet builds the namespaces, or skips the test with the reason
// when this machine cannot (not root, no ip command, no namespaces).
func newPartitionNet(t *testing.T) *partitionNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partition test needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition test needs the ip command (iproute2)")
	}
	id := os.Getpid() % 200
	n := &partitionNet{t: t, bridge: fmt.Sprintf("llbr%d", id), subnet: fmt.Sprintf("10.231.%d", id)}
	if out, err := exec.Command("ip", "netns", "add", fmt.Sprintf("llp%d-probe", id)).CombinedOutput(); err != nil {
		t.Skipf("network namespaces cannot be created here: %v %s", err, out)
	}
	exec.Command("ip", "netns", "del", fmt.Sprintf("llp%d-probe", id)).Run()
	t.Cleanup(n.destroy)
	n.run("ip", "link", "add", n.bridge, "type", "bridge")
	n.run("ip", "addr", "add", n.subnet+".254/24", "dev", n.bridge)
	n.run("ip", "link", "set", n.bridge, "up")
	for i := 1; i <= 3; i++ {
		ns, veth := fmt.Sprintf("llp%d-%d", id, i), n.veth(i)
		n.ns = append(n.ns, ns)
		n.run("ip", "netns", "add", ns)
		n.run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		n.run("ip", "link", "set", veth, "master", n.bridge, "up")
		n.run("ip", "-n", ns, "addr", "add", n.addr(i)+"/24", "dev", "eth0")
		n.run("ip", "-n", ns, "link", "set", "eth0", "up")
		n.run("ip", "-n", ns, "link", "set", "lo", "up")
	}
	return n
}

func (n *partitionNet) veth(i int) string { return fmt.Sprintf("%sv%d", n.bridge, i) }
func (n *partitionNet) addr(i int) string { return fmt.Sprintf("%s.%d", n.subnet, i) }

func (n *partitionNet) run(args ...string) {
	n.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cut takes host i off the network; heal puts it back.
func (n *partitionNet) cut(i int)  { n.run("ip", "link", "set", n.veth(i), "down") }
func (n *partitionNet) heal(i int) { n.run("ip", "link", "set", n.veth(i), "up") }

func (n *partitionNet) destroy() {
	for _, ns := range n.ns {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("ip", "link", "del", n.bridge).Run()
}

// partitionDashboard is one dashboard in its own namespace.
type partitionDashboard struct {
	proc  *e2eProc
	url   string
	token string
}

func (d *partitionDashboard) status(t *testing.T) (bus.Status, error) {
	req, _ := http.NewRequest("GET", d.url+"/api/bot/status", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return bus.Status{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st bus.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return st, nil
}

func (d *partitionDashboard) restart(t *testing.T) (bus.Reply, error) {
	req, _ := http.NewRequest("POST", d.url+"/api/bot/restart", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return bus.Reply{}, err
	}
	defer resp.Body.Close()
	var r bus.Reply
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != 200 {
		return r, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return r, nil
}

func (d *partitionDashboard) waitStatus(t *testing.T, what string, cond func(bus.Status) bool) bus.Status {
	t.Helper()
	var st bus.Status
	e2eWait(t, 45*time.Second, what, func() (bool, string) {
		var err error
		st, err = d.status(t)
		return err == nil && cond(st), fmt.Sprintf("%+v %v", st, err)
	})
	return st
}

// TestE2EPartitionedDashboardDoesNotTakeTheBotDown runs three clustered
// dashboards on three network hosts and an agent beside the bot, then cuts
// one dashboard's host off the network: the other two keep seeing and
// commanding the bot, the bot keeps its PID unless asked, and the cut-off
// dashboard catches up when the network heals.
func TestE2EPartitionedDashboardDoesNotTakeTheBotDown(t *testing.T) {
	n := newPartitionNet(t)
	dir := t.TempDir()
	const pw = "partition-test-password"
	users := filepath.Join(dir, "users")
	os.WriteFile(users, []byte("operator op "+pw+"\nagent ag "+pw+" bot\n"), 0o600)
	// The cluster listens beyond loopback, so its routes need a secret.
	secret := filepath.Join(dir, "route.secret")
	os.WriteFile(secret, []byte("partition-test-route-secret-0123456789\n"), 0o600)
	var routes, clients []string
	for i := 1; i <= 3; i++ {
		routes = append(routes, "nats://"+n.addr(i)+":6222")
		clients = append(clients, "nats://ag:"+pw+"@"+n.addr(i)+":4222")
	}
	var ds []*partitionDashboard
	for i := 1; i <= 3; i++ {
		ddir := filepath.Join(dir, fmt.Sprint("d", i))
		os.MkdirAll(ddir, 0o755)
		p := &e2eProc{t: t, name: fmt.Sprint("dashboard ", i), out: &e2eOutput{}, done: make(chan struct{})}
		p.cmd = exec.Command("ip", "netns", "exec", n.ns[i-1], e2eBin(t), "dashboard",
			"--http", n.addr(i)+":8000", "--nats-listen", n.addr(i)+":4222",
			"--cluster", n.addr(i)+":6222", "--routes", strings.Join(routes, ","),
			"--nats-users", users, "--cluster-secret", secret, "--data", ddir, "--no-history")
		p.cmd.Env = e2eEnv()
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.cmd.Wait(); close(p.done) }()
		t.Cleanup(func() {
			p.signal(syscall.SIGKILL)
			<-p.done
			if t.Failed() {
				t.Logf("--- output of %s:\n%s", p.name, p.out)
			}
		})
		p.waitOutput("page:", 20*time.Second)
		tok, _ := os.ReadFile(filepath.Join(ddir, "dashboard.token"))
		ds = append(ds, &partitionDashboard{proc: p, url: "http://" + n.addr(i) + ":8000", token: strings.TrimSpace(string(tok))})
	}
	agentDir := filepath.Join(dir, "agent")
	os.MkdirAll(agentDir, 0o755)
	agent := e2eStart(t, "agent", agentDir, e2eEnv("LIFELINE_HEARTBEAT=100ms", "NATS_URL="+strings.Join(clients, ",")),
		"agent", "--stop-bot-on-exit", "--heartbeat-timeout", "2s")
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(agentDir, "data", "bot.log"))
			t.Logf("--- bot.log:\n%s", log)
		}
		if data, err := os.ReadFile(filepath.Join(agentDir, "data", "bot.pid")); err == nil {
			var pid int
			fmt.Sscan(string(data), &pid)
			if pid > 1 {
				e2eKill(pid)
			}
		}
	})
	_ = agent
	running := func(st bus.Status) bool { return st.State == bus.StateRunning && st.Agent.Connected && st.PID > 0 }
	first := ds[0].waitStatus(t, "bot running on dashboard 1", running)
	for _, d := range ds[1:] {
		d.waitStatus(t, "bot running on every dashboard", running)
	}

	// Cut off the dashboard carrying the agent, so the agent must fail over.
	victim := 0
	for i := range ds {
		if strings.Contains(first.Agent.Bus, n.addr(i+1)+":") {
			victim = i
		}
	}
	n.cut(victim + 1)
	var survivors []*partitionDashboard
	for i, d := range ds {
		if i != victim {
			survivors = append(survivors, d)
		}
	}
	for _, d := range survivors {
		st := d.waitStatus(t, "survivors still see the bot", func(st bus.Status) bool {
			return running(st) && !strings.Contains(st.Agent.Bus, n.addr(victim+1)+":")
		})
		if st.PID != first.PID {
			t.Fatalf("the partition replaced the bot: pid %d, was %d", st.PID, first.PID)
		}
	}
	// The survivors drop their route to the lost server within seconds; a
	// request sent before that may be lost with it, as an operator would
	// see, so ask again until the agent answers.
	var r bus.Reply
	e2eWait(t, 30*time.Second, "restart through a survivor", func() (bool, string) {
		var err error
		r, err = survivors[0].restart(t)
		return err == nil && r.OK, fmt.Sprintf("%+v %v", r, err)
	})
	if r.OldPID != first.PID {
		t.Fatalf("restart replaced pid %d, want %d", r.OldPID, first.PID)
	}
	for _, d := range survivors {
		d.waitStatus(t, "new PID on every survivor", func(st bus.Status) bool { return running(st) && st.PID == r.NewPID })
	}

	// Healed, the cut-off dashboard catches up on its own.
	n.heal(victim + 1)
	ds[victim].waitStatus(t, "healed dashboard shows the new bot", func(st bus.Status) bool { return running(st) && st.PID == r.NewPID })
}
