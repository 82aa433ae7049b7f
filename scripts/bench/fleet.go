//go:build linux

package main

// `make bench-fleet`: lifeline at fleet size, alone (no peers).
//
//  1. One agent (--config) with N tinybots: memory, idle CPU without and
//     with 1 Hz heartbeats, respawn after SIGKILL of one bot and of ten at
//     once.
//  2. One dashboard following F simulated bots: CPU and memory.
//  3. The same dashboard with C live-stream clients: heartbeat -> client
//     latency.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

func runFleet(c config, w io.Writer) error {
	fmt.Fprintf(w, "lifeline fleet: %s\n\n", hostLine(c))
	// BENCH_FLEET=dashboard measures the dashboard alone, for its work.
	if os.Getenv("BENCH_FLEET") == "dashboard" {
		return fleetDashboard(c, w)
	}
	// BENCH_FLEET=agent measures the one agent with many bots alone.
	if os.Getenv("BENCH_FLEET") == "agent" {
		return fleetAgent(c, w)
	}
	// BENCH_FLEET=agent-idle measures the agent's idle CPU alone, for its
	// work (see agentIdle).
	if os.Getenv("BENCH_FLEET") == "agent-idle" {
		return agentIdle(c, w)
	}
	if c.skipAgent {
		fmt.Fprintln(w, "One agent with many bots: skipped (-skip-agent)")
	} else if err := fleetAgent(c, w); err != nil {
		return fmt.Errorf("agent with %d bots: %w", c.bots, err)
	}
	return fleetDashboard(c, w)
}

// row prints one figure of the fleet report.
func row(w io.Writer, what, value string) { fmt.Fprintf(w, "  %-58s %s\n", what, value) }

func fleetAgent(c config, w io.Writer) error {
	pr, err := newProbe(filepath.Join(c.work, "fleet-probe.sock"))
	if err != nil {
		return err
	}
	defer pr.close()
	defer func() { reap(pr.reported(), c.tinybot) }()
	c.exit.add(func() { reap(pr.reported(), c.tinybot) })
	direct := &results{}
	if err := measureDirect(c, pr, direct); err != nil {
		return err
	}
	ten := min(10, c.bots)
	directTen, err := measureDirectBurst(c, pr, ten)
	if err != nil {
		return err
	}
	lp, err := newLifeline(c.lifeline, c.tinybot, filepath.Join(c.work, "fleet-agent"), pr.path)
	if err != nil {
		return err
	}
	defer lp.Close()
	c.exit.add(lp.Close)
	if !lp.hasConfig {
		fmt.Fprintf(w, "One agent with %d bots: skipped, this lifeline's agent has no --config\n\n", c.bots)
		return nil
	}

	// One bot, for the cost of each extra one.
	pr.drain()
	if err := lp.Start([]string{"b001"}); err != nil {
		return err
	}
	if _, err := pr.wait("b001", 0, reportTimeout); err != nil {
		return err
	}
	time.Sleep(c.settle)
	rss1, _ := memKB(lp.Daemons())
	if err := stopAll(lp, pr, c.tinybot); err != nil {
		return err
	}

	names := make([]string, c.bots)
	for i := range names {
		names[i] = fmt.Sprintf("b%03d", i+1)
	}
	pr.drain()
	if err := lp.Start(names); err != nil {
		return err
	}
	got, err := pr.waitAll(names, nil, 60*time.Second)
	if err != nil {
		return err
	}
	pids := make(map[string]int, len(got))
	for n, r := range got {
		pids[n] = r.pid
	}
	time.Sleep(c.settle)
	rss, pss := memKB(lp.Daemons())
	cpu := cpuPercent(lp.Daemons(), c.cpuWindow)

	// Respawn after SIGKILL: one bot, then ten at once.
	var one, each, last []float64
	for range c.n {
		name := names[rand.IntN(len(names))]
		pr.drain()
		t0 := time.Now()
		syscall.Kill(pids[name], syscall.SIGKILL)
		r, err := pr.wait(name, pids[name], reportTimeout)
		if err != nil {
			return err
		}
		one = append(one, ms(r.at.Sub(t0)))
		pids[name] = r.pid
	}
	for range c.n {
		picked := slices.Clone(names)
		rand.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
		picked = picked[:ten]
		pr.drain()
		t0 := time.Now()
		for _, n := range picked {
			syscall.Kill(pids[n], syscall.SIGKILL)
		}
		back, err := pr.waitAll(picked, pids, reportTimeout)
		if err != nil {
			return err
		}
		var worst float64
		for n, r := range back {
			d := ms(r.at.Sub(t0))
			each = append(each, d)
			worst = max(worst, d)
			pids[n] = r.pid
		}
		last = append(last, worst)
	}

	// Idle CPU again, now with a heartbeat per bot each second, published
	// by the harness with the bot login and each bot's PID, as an SDK bot
	// would, and hang detection on.
	if err := stopAll(lp, pr, c.tinybot); err != nil {
		return err
	}
	lp.heartbeatTimeout = "5s"
	pr.drain()
	if err := lp.Start(names); err != nil {
		return err
	}
	if got, err = pr.waitAll(names, nil, 60*time.Second); err != nil {
		return err
	}
	nc, err := connect(lp.natsURL, filepath.Join(lp.dir, "data", "bus", bus.LoginBot+".nk"))
	if err != nil {
		return err
	}
	stopBeats := make(chan struct{})
	var beats sync.WaitGroup
	beats.Go(func() { heartbeatLoop(nc, got, stopBeats) })
	time.Sleep(c.settle)
	cpuHB := cpuPercent(lp.Daemons(), c.cpuWindow)
	close(stopBeats)
	beats.Wait()
	nc.Close()
	respawned := len(pr.ch) // a bot killed as hung would have reported again
	lp.heartbeatTimeout = ""

	fmt.Fprintf(w, "One agent, --config with %d tinybots (median of n=%d; backoff off):\n", c.bots, c.n)
	row(w, "agent RSS, 1 bot", fmt.Sprintf("%.1f MB", float64(rss1)/1024))
	row(w, fmt.Sprintf("agent RSS / PSS, %d bots", c.bots), fmt.Sprintf("%.1f MB / %.1f MB", float64(rss)/1024, float64(pss)/1024))
	if c.bots > 1 {
		row(w, "each extra bot", fmt.Sprintf("%.0f KB RSS", float64(rss-rss1)/float64(c.bots-1)))
	}
	row(w, "agent CPU, idle bots, no heartbeats", fmt.Sprintf("%.2f %% of a core over %s", cpu, c.cpuWindow))
	hbNote := ""
	if respawned > 0 {
		hbNote = fmt.Sprintf(" (WARNING: %d bots restarted: heartbeats not taken?)", respawned)
	}
	row(w, "agent CPU, 1 Hz heartbeats, hang detection 5s", fmt.Sprintf("%.2f %% of a core over %s%s", cpuHB, c.cpuWindow, hbNote))
	base := median(direct.samples[figDirect])
	row(w, "bot started directly (baseline)", fmt.Sprintf("%.1f ms", base))
	row(w, "SIGKILL of one bot -> new PID", fmt.Sprintf("%.1f ms (%.1f ms beyond the bot's own start)", median(one), median(one)-base))
	baseTen := median(directTen)
	row(w, fmt.Sprintf("%d bots started directly at once (baseline), each", ten), fmt.Sprintf("%.1f ms", baseTen))
	row(w, fmt.Sprintf("SIGKILL of %d at once -> each new PID", ten), fmt.Sprintf("%.1f ms (%.1f ms beyond %d started at once; %.1f beyond one), p95 %.1f ms",
		median(each), median(each)-baseTen, ten, median(each)-base, percentile(each, 95)))
	row(w, fmt.Sprintf("SIGKILL of %d at once -> last of them back", ten), fmt.Sprintf("%.1f ms", median(last)))
	fmt.Fprintln(w)
	return stopAll(lp, pr, c.tinybot)
}

// measureDirectBurst starts n tinybots at once, c.n times, and returns the
// time from just before the first start to each one's report: the baseline
// for n bots respawned at once, which start together just as these do and
// share the same cores. (Against a single start, "beyond" for a burst would
// count the bots' own start-up, run n at a time, as the supervisor's.)
func measureDirectBurst(c config, pr *probe, n int) ([]float64, error) {
	var out []float64
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("direct%02d", i+1)
	}
	for range c.n {
		pr.drain()
		cmds := make([]*exec.Cmd, 0, n)
		t0 := time.Now()
		for _, name := range names {
			cmd := exec.Command(c.tinybot, name)
			cmd.Env = cleanEnv("BENCH_SOCK=" + pr.path)
			// In its own session, as the agent starts its bots; gone with the harness.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				killAll(cmds)
				return nil, fmt.Errorf("start tinybot: %w", err)
			}
			cmds = append(cmds, cmd)
		}
		got, err := pr.waitAll(names, nil, reportTimeout)
		killAll(cmds)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			out = append(out, ms(r.at.Sub(t0)))
		}
		time.Sleep(50 * time.Millisecond) // let the killed ones go before the next round
	}
	return out, nil
}

func killAll(cmds []*exec.Cmd) {
	for _, cmd := range cmds {
		cmd.Process.Kill()
	}
	for _, cmd := range cmds {
		cmd.Wait()
	}
}

// agentIdle measures one agent with c.bots tinybots, hang detection on and
// a heartbeat per bot each second, with its dashboard polling it: CPU over
// c.cpuWindow and RSS, in c.n rounds. With BENCH_COMPARE=BINARY the rounds
// alternate between c.lifeline and that binary, each starting afresh, so a
// change is measured against the old one under the same load of a shared
// machine; the medians of each are printed.
func agentIdle(c config, w io.Writer) error {
	bins := []string{c.lifeline}
	if other := os.Getenv("BENCH_COMPARE"); other != "" {
		bins = append(bins, other)
	}
	pr, err := newProbe(filepath.Join(c.work, "idle-probe.sock"))
	if err != nil {
		return err
	}
	defer pr.close()
	defer func() { reap(pr.reported(), c.tinybot) }()
	c.exit.add(func() { reap(pr.reported(), c.tinybot) })
	names := make([]string, c.bots)
	for i := range names {
		names[i] = fmt.Sprintf("b%03d", i+1)
	}
	cpus := make([][]float64, len(bins))
	rsss := make([][]float64, len(bins))
	for round := range c.n {
		for i, bin := range bins {
			cpu, rss, err := agentIdleOnce(c, pr, bin, filepath.Join(c.work, fmt.Sprintf("idle-%d-%d", round, i)), names)
			if err != nil {
				return err
			}
			cpus[i] = append(cpus[i], cpu)
			rsss[i] = append(rsss[i], rss)
			fmt.Fprintf(os.Stderr, "bench: round %d %s: %.2f %% of a core, %.1f MB\n", round+1, bin, cpu, rss)
		}
	}
	fmt.Fprintf(w, "One agent, --config with %d tinybots, 1 Hz heartbeats, hang detection 5s, dashboard polling (median of n=%d, CPU over %s):\n", c.bots, c.n, c.cpuWindow)
	for i, bin := range bins {
		row(w, bin, fmt.Sprintf("%.2f %% of a core (min %.2f, max %.2f), %.1f MB RSS",
			median(cpus[i]), slices.Min(cpus[i]), slices.Max(cpus[i]), median(rsss[i])))
	}
	fmt.Fprintln(w)
	return nil
}

// agentIdleOnce is one round of agentIdle with binary bin in dir.
func agentIdleOnce(c config, pr *probe, bin, dir string, names []string) (cpu, rssMB float64, err error) {
	lp, err := newLifeline(bin, c.tinybot, dir, pr.path)
	if err != nil {
		return 0, 0, err
	}
	defer lp.Close()
	c.exit.add(lp.Close)
	if !lp.hasConfig {
		return 0, 0, errors.New(bin + ": this lifeline's agent has no --config")
	}
	lp.heartbeatTimeout = "5s"
	pr.drain()
	if err := lp.Start(names); err != nil {
		return 0, 0, err
	}
	got, err := pr.waitAll(names, nil, 60*time.Second)
	if err != nil {
		return 0, 0, err
	}
	nc, err := connect(lp.natsURL, filepath.Join(lp.dir, "data", "bus", bus.LoginBot+".nk"))
	if err != nil {
		return 0, 0, err
	}
	stopBeats := make(chan struct{})
	var beats sync.WaitGroup
	if os.Getenv("BENCH_BEATS") != "0" { // 0: no heartbeats, to tell their cost
		beats.Go(func() { heartbeatLoop(nc, got, stopBeats) })
	}
	time.Sleep(c.settle)
	cpu = cpuPercent(lp.Daemons(), c.cpuWindow)
	rss, _ := memKB(lp.Daemons())
	close(stopBeats)
	beats.Wait()
	nc.Close()
	if n := len(pr.ch); n > 0 {
		fmt.Fprintf(os.Stderr, "bench: WARNING: %d bots restarted: heartbeats not taken?\n", n)
	}
	return cpu, float64(rss) / 1024, stopAll(lp, pr, c.tinybot)
}

// heartbeatLoop publishes a heartbeat for every bot of got once a second,
// spread over the second, until stop closes.
func heartbeatLoop(nc *nats.Conn, got map[string]report, stop chan struct{}) {
	var bots []report
	for _, r := range got {
		bots = append(bots, r)
	}
	started := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(len(bots)))
	defer tick.Stop()
	var seq uint64
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		r := bots[i%len(bots)]
		seq++
		nc.Publish(bus.HeartbeatSubject(r.name), bus.Encode(bus.Heartbeat{Name: r.name, PID: r.pid, Host: "bench", Seq: seq, Time: time.Now(), StartedAt: started}))
	}
}

// connect opens a bus client logged in with seed file seed.
func connect(url, seed string) (*nats.Conn, error) {
	l, err := bus.ResolveLogin(url, seed, "")
	if err != nil {
		return nil, fmt.Errorf("resolve bus login: %w", err)
	}
	opts, err := l.Options()
	if err != nil {
		return nil, fmt.Errorf("bus login options: %w", err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to bus: %w", err)
	}
	return nc, nil
}

// --- the dashboard at fleet size -----------------------------------------

// botsPerAgent is how many simulated bots share one simulated agent's bus
// connection, as a multi-bot agent's do.
const botsPerAgent = 100

// sim is a simulated fleet: agents (bus clients with the agent login), each
// publishing a heartbeat per bot per second, spread over the second, and
// answering its bots' status requests with a running status, as agents do.
// Probe bots' heartbeats carry stats.bench_seq, and their publish times are
// kept, so that stream clients can time them.
type sim struct {
	conns    []*nats.Conn
	stop     chan struct{}
	wg       sync.WaitGroup
	probes   map[string]bool // heartbeat probes; read-only once started
	evProbes map[string]bool // event probes, other bots (an event makes the dashboard ask the agent anew)

	mu    sync.Mutex
	pub   map[string]map[int64]time.Time // probe bot -> bench_seq -> heartbeat publish time
	evPub map[string]map[int64]time.Time // probe bot -> seq -> event publish time
}

func simName(i int) string { return fmt.Sprintf("sim%05d", i) }

func startSim(url, seed string, bots, probes int) (*sim, error) {
	s := &sim{stop: make(chan struct{}), probes: make(map[string]bool), evProbes: make(map[string]bool), pub: make(map[string]map[int64]time.Time), evPub: make(map[string]map[int64]time.Time)}
	for i := 0; i < probes && i*botsPerAgent < bots; i++ {
		s.probes[simName(i*botsPerAgent)] = true // the first bot of the first agents
		// Half a second from the heartbeat probes: a lifecycle event goes to
		// the streams at once with the statuses waiting for a flush, and a
		// heartbeat probe just before it would be timed riding along.
		s.evProbes[simName(i*botsPerAgent+botsPerAgent/2)] = true
	}
	for first := 0; first < bots; first += botsPerAgent {
		nc, err := connect(url, seed)
		if err != nil {
			s.close()
			return nil, err
		}
		s.conns = append(s.conns, nc)
		var names []string
		for i := first; i < min(first+botsPerAgent, bots); i++ {
			names = append(names, simName(i))
		}
		agentPID := 100000 + first
		started := time.Now()
		for i, name := range names {
			status := bus.Encode(bus.Status{Name: name, State: bus.StateRunning, PID: agentPID + i + 1, Host: "sim",
				StartedAt: &started, Agent: bus.AgentInfo{PID: agentPID, Host: "sim", Connected: true}})
			if _, err := nc.Subscribe(bus.AgentSubject(name, bus.OpStatus), func(m *nats.Msg) { m.Respond(status) }); err != nil {
				s.close()
				return nil, fmt.Errorf("subscribe to status requests: %w", err)
			}
		}
		s.wg.Go(func() { s.beat(nc, names, agentPID, started) })
	}
	return s, nil
}

func (s *sim) beat(nc *nats.Conn, names []string, agentPID int, started time.Time) {
	// Each agent starts at a random point of the second, so the fleet's
	// heartbeats are spread evenly rather than in bursts.
	select {
	case <-time.After(rand.N(time.Second)):
	case <-s.stop:
		return
	}
	tick := time.NewTicker(time.Second / time.Duration(len(names)))
	defer tick.Stop()
	seq := make([]uint64, len(names))
	for i := 0; ; i++ {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		k := i % len(names)
		seq[k]++
		hb := bus.Heartbeat{Name: names[k], PID: agentPID + k + 1, Host: "sim", Seq: seq[k], Time: time.Now(), StartedAt: started}
		probe := s.isProbe(names[k])
		if probe {
			hb.Stats = map[string]int64{"bench_seq": int64(seq[k])}
		}
		data := bus.Encode(hb)
		if probe {
			s.record(s.pub, names[k], int64(seq[k]))
		}
		nc.Publish(bus.HeartbeatSubject(names[k]), data)
		if s.evProbes[names[k]] {
			// And a lifecycle event, a state change: those go to the
			// streams at once, where heartbeats that change nothing else
			// may wait their turn.
			ev := bus.Event{Time: time.Now(), Name: names[k], Type: bus.EventStarted, PID: hb.PID, Reason: fmt.Sprintf("bench %d", seq[k])}
			s.record(s.evPub, names[k], int64(seq[k]))
			nc.Publish(bus.EventsSubject(names[k]), bus.Encode(ev))
		}
	}
}

func (s *sim) isProbe(name string) bool { return s.probes[name] }

// record notes when probe message seq of bot name was published.
func (s *sim) record(m map[string]map[int64]time.Time, name string, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m[name] == nil {
		m[name] = make(map[int64]time.Time)
	}
	m[name][seq] = time.Now()
}

func (s *sim) published(m map[string]map[int64]time.Time, name string, seq int64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := m[name][seq]
	return t, ok
}

func (s *sim) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	for _, nc := range s.conns {
		nc.Close()
	}
}

// dashAPI calls the dashboard's API with its access token.
type dashAPI struct {
	url, token string
}

// tracked counts the simulated bots the dashboard lists, and those of them
// it shows with a connected agent.
func (d dashAPI) tracked() (listed, withAgent int, err error) {
	req, _ := http.NewRequest("GET", d.url+"/api/bots", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("list bots: %w", err)
	}
	defer resp.Body.Close()
	var list struct {
		Bots []bus.Status `json:"bots"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return 0, 0, fmt.Errorf("list bots: HTTP %d: %w", resp.StatusCode, err)
	}
	for _, b := range list.Bots {
		if strings.HasPrefix(b.Name, "sim") {
			listed++
			if b.Agent.Connected {
				withAgent++
			}
		}
	}
	return listed, withAgent, nil
}

func fleetDashboard(c config, w io.Writer) error {
	lp, err := newLifeline(c.lifeline, c.tinybot, filepath.Join(c.work, "fleet-dashboard"), "")
	if err != nil {
		return err
	}
	defer lp.Close()
	c.exit.add(lp.Close)
	page, err := waitFileLine(filepath.Join(lp.dir, "dashboard.out"), "page:", 5*time.Second)
	if err != nil {
		return err
	}
	token, err := os.ReadFile(filepath.Join(lp.dir, "data", "dashboard.token"))
	if err != nil {
		return fmt.Errorf("read dashboard token: %w", err)
	}
	api := dashAPI{url: strings.TrimSuffix(page, "/"), token: strings.TrimSpace(string(token))}
	seed := filepath.Join(lp.dir, "data", "bus", bus.LoginAgent+".nk")
	dash := []int{lp.dashboardPID()}

	fmt.Fprintf(w, "One dashboard, simulated fleet: %d bus clients with the agent login, %d bots each, publishing\n"+
		"  one heartbeat per bot per second (spread over the second) and answering each bot's status request\n"+
		"  with a running status, as agents do; no micro service registration. The load generator shares the machine.\n", (c.fleetBots+botsPerAgent-1)/botsPerAgent, botsPerAgent)
	sizes := []int{c.fleetBots}
	if c.push {
		for n := c.fleetBots * 2; n <= 16*c.fleetBots; n *= 2 {
			sizes = append(sizes, n)
		}
	}
	var s *sim
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	for i, bots := range sizes {
		if s != nil {
			s.close()
		}
		if s, err = startSim(lp.natsURL, seed, bots, 10); err != nil {
			return err
		}
		listed, agents := waitTracked(api, bots, 60*time.Second)
		time.Sleep(c.settle)
		rss, _ := memKB(dash)
		cpu := cpuPercent(dash, c.fleetWindow)
		listed, agents = waitTracked(api, bots, time.Second)
		row(w, fmt.Sprintf("%d bots: dashboard CPU, RSS", bots), fmt.Sprintf("%.1f %% of a core over %s, %.1f MB; tracked %d, with agent %d", cpu, c.fleetWindow, float64(rss)/1024, listed, agents))
		if i > 0 && (cpu >= 100 || listed < bots) {
			row(w, "push: largest fleet within one core", fmt.Sprintf("%d bots (at %d: CPU %.0f %%, tracked %d)", sizes[i-1], bots, cpu, listed))
			break
		}
		if c.push && i == len(sizes)-1 {
			row(w, "push: largest fleet tried", fmt.Sprintf("%d bots, still within one core", bots))
		}
		if i == 0 {
			if err := fleetStreams(c, w, api, s, dash); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitTracked waits until the dashboard lists every simulated bot with its
// agent, or timeout passes, and returns what it lists.
func waitTracked(api dashAPI, bots int, timeout time.Duration) (listed, withAgent int) {
	deadline := time.Now().Add(timeout)
	for {
		listed, withAgent, _ = api.tracked()
		if withAgent >= bots || time.Now().After(deadline) {
			return listed, withAgent
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fleetStreams connects c.streamClients live-stream clients and times each
// probe heartbeat from its publication to each client's status event for it.
func fleetStreams(c config, w io.Writer, api dashAPI, s *sim, dash []int) error {
	var (
		mu                     sync.Mutex
		latencies, evLatencies []float64
		refused                atomic.Int64
		connected              atomic.Int64
		readBytes              atomic.Int64
		sampling               atomic.Bool // only heartbeats timed within the window count
		refusedWhy             atomic.Value
	)
	var (
		wg       sync.WaitGroup
		bodiesMu sync.Mutex
		bodies   []io.Closer
		closing  bool
		ended    atomic.Int64 // streams the dashboard ended before the harness did
		warm     atomic.Int64 // clients past their first snapshot
	)
	// streamClient reads one live stream until it ends: true when the
	// dashboard ended it, false when the harness did.
	streamClient := func(body io.Reader, mine, mineEv *[]float64, warmed *bool) bool {
		last, lastEv := make(map[string]int64), make(map[string]int64)
		r := bufio.NewReaderSize(body, 64<<10)
		var long []byte // a line longer than the buffer, so far
		for {
			line, err := r.ReadSlice('\n')
			readBytes.Add(int64(len(line)))
			if errors.Is(err, bufio.ErrBufferFull) {
				long = append(long, line...)
				continue
			}
			if err != nil {
				bodiesMu.Lock()
				defer bodiesMu.Unlock()
				return !closing
			}
			if long != nil {
				line, long = append(long, line...), nil
			}
			if !bytes.Contains(line, []byte(`bench`)) {
				continue
			}
			at := time.Now()
			probeSeqs(line, eventKey, func(name string, seq int64) {
				prev, seen := lastEv[name]
				if seq <= prev {
					return
				}
				lastEv[name] = seq
				if t, ok := s.published(s.evPub, name, seq); ok && seen && sampling.Load() {
					*mineEv = append(*mineEv, ms(at.Sub(t)))
				}
			})
			// One "status" or a batch of them in a "statuses" event.
			probeSeqs(line, heartbeatKey, func(name string, seq int64) {
				// The first sighting of a bot on a stream is the snapshot
				// sent on connecting, not a heartbeat arriving: no sample.
				prev, seen := last[name]
				if seq <= prev {
					return
				}
				last[name] = seq
				if !seen {
					return
				}
				if !*warmed {
					*warmed = true // past its snapshot: live updates from here on
					warm.Add(1)
				}
				if t, ok := s.published(s.pub, name, seq); ok && sampling.Load() {
					*mine = append(*mine, ms(at.Sub(t)))
				}
			})
		}
	}
	for range c.streamClients {
		wg.Go(func() {
			var mine, mineEv []float64
			warmed := false
			defer func() {
				mu.Lock()
				latencies = append(latencies, mine...)
				evLatencies = append(evLatencies, mineEv...)
				mu.Unlock()
			}()
			// A stream the dashboard ends is opened again after the
			// "retry: 2000" it asks for, as a browser's EventSource does.
			for first := true; ; first = false {
				body, err := openStream(api)
				if err != nil {
					if first {
						refused.Add(1)
						refusedWhy.CompareAndSwap(nil, err.Error())
					}
					return
				}
				bodiesMu.Lock()
				if closing {
					bodiesMu.Unlock()
					body.Close()
					return
				}
				bodies = append(bodies, body)
				bodiesMu.Unlock()
				if first {
					connected.Add(1)
				}
				if !streamClient(body, &mine, &mineEv, &warmed) {
					return
				}
				ended.Add(1)
				time.Sleep(2 * time.Second)
			}
		})
	}
	// Let them connect and take their first snapshot, then sample.
	deadline := time.Now().Add(30 * time.Second)
	for connected.Load()+refused.Load() < int64(c.streamClients) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// Each stream starts with a snapshot of every bot: at fleet size that is
	// megabytes per client. Sample once every client is past its own.
	warmStart := time.Now()
	for warm.Load() < connected.Load() && time.Since(warmStart) < c.streamWarmup {
		time.Sleep(100 * time.Millisecond)
	}
	warmTook := time.Since(warmStart)
	time.Sleep(c.settle)
	sampling.Store(true)
	self0 := cpuTicks([]int{os.Getpid()})
	b0 := readBytes.Load()
	t0 := time.Now()
	cpu := cpuPercent(dash, c.streamDuration)
	rss, _ := memKB(dash)
	selfCPU := float64(cpuTicks([]int{os.Getpid()})-self0) / clockTick / time.Since(t0).Seconds() * 100
	rate := float64(readBytes.Load()-b0) / time.Since(t0).Seconds() / 1e6
	sampling.Store(false)
	bodiesMu.Lock()
	closing = true
	for _, b := range bodies {
		b.Close()
	}
	bodiesMu.Unlock()
	wg.Wait()
	label := fmt.Sprintf("%d live-stream clients (%d connected, %d refused; the dashboard ended streams %d times, each reopened after 2 s)", c.streamClients, connected.Load(), refused.Load(), ended.Load())
	if len(latencies) == 0 {
		row(w, label, fmt.Sprintf("no probe heartbeat reached any client within %s", c.streamDuration))
	} else {
		row(w, label, fmt.Sprintf("heartbeat -> client p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples, %d probe bots)",
			median(latencies), percentile(latencies, 99), slices.Max(latencies), len(latencies), len(s.probes)))
	}
	row(w, "  streams past their first snapshot", fmt.Sprintf("%d of %d, %.1f s after all connected (waited at most %s)", warm.Load(), connected.Load(), warmTook.Seconds(), c.streamWarmup))
	if len(evLatencies) > 0 {
		row(w, "  lifecycle event (state change) -> client", fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples)",
			median(evLatencies), percentile(evLatencies, 99), slices.Max(evLatencies), len(evLatencies)))
	} else {
		row(w, "  lifecycle event (state change) -> client", "none reached a client in the window")
	}
	if why, ok := refusedWhy.Load().(string); ok {
		row(w, "  first refusal", why)
	}
	row(w, "  dashboard meanwhile", fmt.Sprintf("%.1f %% of a core, %.1f MB RSS, streams %.1f MB/s; the load generator used %.0f %%", cpu, float64(rss)/1024, rate, selfCPU))
	return nil
}

// openStream opens /api/stream with the Bearer token, or when that is
// refused (the per-token cap), as a browser would: its own login session.
func openStream(api dashAPI) (io.ReadCloser, error) {
	req, _ := http.NewRequest("GET", api.url+"/api/stream", nil)
	req.Header.Set("Authorization", "Bearer "+api.token)
	resp, err := http.DefaultClient.Do(req)
	if err == nil && resp.StatusCode == http.StatusOK {
		return resp.Body, nil
	}
	if err == nil {
		resp.Body.Close()
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	login, err := client.Get(api.url + "/login?token=" + api.token)
	if err != nil {
		return nil, fmt.Errorf("log in: %w", err)
	}
	login.Body.Close()
	resp, err = client.Get(api.url + "/api/stream")
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		resp.Body.Close()
		return nil, fmt.Errorf("open stream: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return resp.Body, nil
}

// The probe marks stream clients look for: a heartbeat's stats.bench_seq in
// a status, and the "bench N" reason of a lifecycle event.
var heartbeatKey, eventKey = []byte(`"bench_seq":`), []byte(`"reason":"bench `)

// probeSeqs calls f with each probe mark key in one SSE data line (one
// status, a batch of them, or an event): the number after key with the name
// of its object (the nearest "name" before it: neither holds another). It scans
// rather than decodes, as a client at fleet size gets thousands a second.
func probeSeqs(line []byte, key []byte, f func(name string, seq int64)) {
	nameKey := []byte(`"name":"`)
	for i := 0; ; {
		j := bytes.Index(line[i:], key)
		if j < 0 {
			return
		}
		j += i
		end := j + len(key)
		for end < len(line) && line[end] >= '0' && line[end] <= '9' {
			end++
		}
		seq, err := strconv.ParseInt(string(line[j+len(key):end]), 10, 64)
		if n := bytes.LastIndex(line[:j], nameKey); err == nil && n >= 0 {
			n += len(nameKey)
			if q := bytes.IndexByte(line[n:j], '"'); q >= 0 {
				f(string(line[n:n+q]), seq)
			}
		}
		i = end
	}
}
