// The benchmarks read /proc and use Linux process controls, so they build
// on Linux only.

//go:build linux

// Command bench is `make bench`: one small static bot (tinybot) supervised
// by lifeline, supervisord and PM2 in one run, and one table of medians,
// each with its ratio to the best peer. `-smoke` is the short run CI does so
// that the harness cannot rot; `-fleet` is `make bench-fleet` (fleet.go).
//
// Run it from the repository root: go run ./scripts/bench [flags]. It
// builds lifeline and tinybot itself; scripts/bench.sh installs the peers.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// config is what a run measures, from the flags.
type config struct {
	n         int           // rounds per timed figure
	bots      int           // bots in the "many bots" figures
	cpuWindow time.Duration // how long idle CPU is measured
	settle    time.Duration // wait after the bots are up, before memory and CPU
	smoke     bool

	lifeline, tinybot           string
	supervisord, supervisorctl  string
	pm2                         string
	peers                       string
	outDir                      string
	work                        string // the run's temporary directory
	fleetBots, streamClients    int
	fleetWindow, streamDuration time.Duration
	streamWarmup                time.Duration
	push, skipAgent             bool
	exit                        *onExit
}

// onExit holds what an interrupted run must clean up, so that no daemon,
// PM2 God or bot of the run outlives it.
type onExit struct {
	mu  sync.Mutex
	fns []func()
}

func (o *onExit) add(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fns = append(o.fns, f)
}

func (o *onExit) run() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.fns) - 1; i >= 0; i-- {
		o.fns[i]()
	}
	o.fns = nil
}

func main() {
	var c config
	fleet := flag.Bool("fleet", false, "run the fleet benchmarks (make bench-fleet) instead of the side-by-side table")
	flag.BoolVar(&c.smoke, "smoke", false, "short run for CI: n=2, 3 bots, short windows; peers not installed are skipped")
	flag.IntVar(&c.n, "n", 20, "rounds per timed figure (median reported)")
	flag.IntVar(&c.bots, "bots", 100, "bots for the many-bots figures")
	flag.DurationVar(&c.cpuWindow, "cpu-window", 10*time.Second, "how long idle CPU is measured")
	flag.DurationVar(&c.settle, "settle", 2*time.Second, "wait after the bots are up before measuring memory and CPU")
	flag.StringVar(&c.lifeline, "lifeline", "", "lifeline binary to measure (default: built from this tree)")
	flag.StringVar(&c.supervisord, "supervisord", "", "supervisord binary (default: from $PATH)")
	flag.StringVar(&c.pm2, "pm2", "", "pm2 binary (default: from $PATH; scripts/bench.sh installs one in a temporary directory)")
	flag.StringVar(&c.peers, "peers", "lifeline,supervisord,pm2", "peers to measure, comma-separated")
	flag.StringVar(&c.outDir, "out", "scripts/bench/out", "directory for a copy of the results (empty: none)")
	flag.IntVar(&c.fleetBots, "fleet-bots", 10000, "fleet: simulated bots on one dashboard")
	flag.IntVar(&c.streamClients, "stream-clients", 1000, "fleet: live-stream clients")
	flag.DurationVar(&c.fleetWindow, "fleet-window", 20*time.Second, "fleet: how long dashboard CPU is measured")
	flag.DurationVar(&c.streamDuration, "stream-duration", 20*time.Second, "fleet: how long stream latency is sampled")
	flag.BoolVar(&c.skipAgent, "skip-agent", false, "fleet: only the dashboard figures")
	flag.DurationVar(&c.streamWarmup, "stream-warmup", 3*time.Minute, "fleet: longest wait for every stream client to get past its first snapshot")
	flag.BoolVar(&c.push, "push", false, "fleet: also grow the fleet until the dashboard needs a whole core")
	flag.Parse()
	if c.smoke {
		// Short everything, except what the command line set itself.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		smoke := map[string]string{"n": "2", "bots": "3", "cpu-window": "1s", "settle": "300ms",
			"fleet-bots": "200", "stream-clients": "20", "fleet-window": "2s", "stream-duration": "3s", "stream-warmup": "20s"}
		for name, v := range smoke {
			if !set[name] {
				flag.Set(name, v)
			}
		}
	}
	if err := run(c, *fleet); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config, fleet bool) error {
	work, err := os.MkdirTemp("", "lifeline-bench-")
	if err != nil {
		return fmt.Errorf("make temporary directory: %w", err)
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(work)
	} else {
		fmt.Fprintln(os.Stderr, "bench: keeping", work)
	}
	c.work = work
	c.exit = &onExit{}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "bench: interrupted; stopping what the run started")
		c.exit.run()
		os.RemoveAll(work)
		os.Exit(130)
	}()
	if err := build(&c); err != nil {
		return err
	}
	var out strings.Builder
	w := io.MultiWriter(os.Stdout, &out)
	name := "bench"
	if fleet {
		name = "bench-fleet"
		err = runFleet(c, w)
	} else {
		err = runSideBySide(c, w)
	}
	if c.outDir != "" && out.Len() > 0 {
		file := filepath.Join(c.outDir, time.Now().UTC().Format(name+"-20060102-150405")+".txt")
		if mkErr := os.MkdirAll(c.outDir, 0o700); mkErr == nil && os.WriteFile(file, []byte(out.String()), 0o600) == nil {
			fmt.Println("results also in", file)
		}
	}
	return err
}

// build builds tinybot, and lifeline unless given, static as `make build`
// does.
func build(c *config) error {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	targets := [][2]string{{"./scripts/bench/tinybot", filepath.Join(c.work, "tinybot")}}
	if c.lifeline == "" {
		c.lifeline = filepath.Join(c.work, "lifeline")
		targets = append(targets, [2]string{"./cmd/lifeline", c.lifeline})
	}
	for _, t := range targets {
		cmd := exec.Command(goCmd, "build", "-o", t[1], t[0])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", t[0], err, out)
		}
	}
	c.tinybot = filepath.Join(c.work, "tinybot")
	return nil
}

// The figures of the table, in order. Every one is "lower is better".
const (
	figDirect  = "bot started directly (baseline)"
	figCold    = "cold start: daemon start -> bot running"
	figKill    = "SIGKILL -> new PID"
	figRestart = "restart command -> new PID"
	figStatus  = "status command wall time"
	figRSS1    = "daemon RSS, 1 bot"
	figPSS1    = "daemon PSS, 1 bot"
	figStartN  = "start N bots -> all running"
	figRSSN    = "daemon RSS, N bots"
	figPSSN    = "daemon PSS, N bots"
	figCPUN    = "daemon CPU, N idle bots"
)

var figureOrder = []string{figDirect, figCold, figKill, figRestart, figStatus, figRSS1, figPSS1, figStartN, figRSSN, figPSSN, figCPUN}

var figureUnit = map[string]string{
	figDirect: "ms", figCold: "ms", figKill: "ms", figRestart: "ms", figStatus: "ms", figStartN: "ms",
	figRSS1: "MB", figPSS1: "MB", figRSSN: "MB", figPSSN: "MB", figCPUN: "%",
}

// results holds each figure's samples for one peer.
type results struct {
	samples map[string][]float64
	err     error  // why the peer stopped early
	skipped string // why the peer did not run at all
	notes   []string
}

func (r *results) add(fig string, v float64) {
	if r.samples == nil {
		r.samples = make(map[string][]float64)
	}
	r.samples[fig] = append(r.samples[fig], v)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func percentile(v []float64, p int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)*p+99)/100-1]
}

const reportTimeout = 20 * time.Second

func runSideBySide(c config, w io.Writer) error {
	pr, err := newProbe(filepath.Join(c.work, "probe.sock"))
	if err != nil {
		return err
	}
	defer pr.close()
	defer func() { reap(pr.reported(), c.tinybot) }()
	c.exit.add(func() { reap(pr.reported(), c.tinybot) })

	fmt.Fprintf(w, "lifeline side by side: %s\n", hostLine(c))
	base := &results{}
	if err := measureDirect(c, pr, base); err != nil {
		return err
	}
	order := []string{}
	all := map[string]*results{}
	extra := []string{}
	for _, name := range strings.Split(c.peers, ",") {
		name = strings.TrimSpace(name)
		r := &results{}
		p, skip := makePeer(c, name, pr.path)
		order = append(order, peerTitle(name))
		all[peerTitle(name)] = r
		if p == nil && name == "lifeline" {
			r.err = errors.New(skip) // lifeline itself is never skipped
			continue
		}
		if p == nil {
			r.skipped = skip
			fmt.Fprintf(os.Stderr, "bench: %s skipped: %s\n", peerTitle(name), skip)
			continue
		}
		c.exit.add(p.Close)
		fmt.Fprintf(os.Stderr, "bench: measuring %s (n=%d, %d bots)...\n", p.Name(), c.n, c.bots)
		r.err = measure(c, p, pr, r)
		if lp, ok := p.(*lifelinePeer); ok && lp.dash.Process != nil {
			rss, pss := memKB([]int{lp.dashboardPID()})
			extra = append(extra, fmt.Sprintf("lifeline also runs its dashboard (the bus that status and restart use): now RSS %.1f MB, PSS %.1f MB", float64(rss)/1024, float64(pss)/1024))
		}
		p.Close()
		reap(pr.reported(), c.tinybot)
		if r.err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s stopped early: %v\n", p.Name(), r.err)
		}
	}
	printTable(c, w, base, order, all)
	for _, e := range extra {
		fmt.Fprintln(w, "  "+e)
	}
	var failed []string
	for _, name := range order {
		// The smoke run fails on lifeline only: a peer's hiccup on a busy
		// CI machine is not lifeline's regression, and the table shows it.
		if all[name].err != nil && (!c.smoke || name == "lifeline") {
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("measuring %s failed (see above)", strings.Join(failed, ", "))
	}
	return nil
}

func peerTitle(name string) string {
	switch strings.ToLower(name) {
	case "pm2":
		return "PM2"
	case "supervisord", "supervisor":
		return "supervisord"
	}
	return strings.ToLower(name)
}

// makePeer returns the named peer, or nil and why it is skipped.
func makePeer(c config, name, sock string) (peer, string) {
	dir := filepath.Join(c.work, "peer-"+strings.ToLower(name))
	switch peerTitle(name) {
	case "lifeline":
		p, err := newLifeline(c.lifeline, c.tinybot, dir, sock)
		if err != nil {
			return nil, err.Error()
		}
		return p, ""
	case "supervisord":
		sd, ctl := c.supervisord, ""
		if sd == "" {
			sd, _ = exec.LookPath("supervisord")
		}
		if sd != "" {
			ctl = filepath.Join(filepath.Dir(sd), "supervisorctl")
		}
		if sd == "" || !executable(ctl) {
			return nil, "supervisord not installed (scripts/bench.sh installs it with apt-get as root)"
		}
		p, err := newSupervisord(sd, ctl, c.tinybot, dir, sock)
		if err != nil {
			return nil, err.Error()
		}
		return p, ""
	case "PM2":
		pm2 := c.pm2
		if pm2 == "" {
			pm2, _ = exec.LookPath("pm2")
		}
		if pm2 == "" {
			return nil, "pm2 not installed (scripts/bench.sh installs it with npm into a temporary directory)"
		}
		p, err := newPM2(pm2, c.tinybot, dir, sock)
		if err != nil {
			return nil, err.Error()
		}
		return p, ""
	}
	return nil, "unknown peer"
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&0o111 != 0
}

// measureDirect times tinybot started by the harness itself: the part of
// every start that belongs to the bot and the kernel, not the supervisor.
func measureDirect(c config, pr *probe, r *results) error {
	for range c.n {
		pr.drain()
		cmd := exec.Command(c.tinybot, "direct")
		cmd.Env = cleanEnv("BENCH_SOCK=" + pr.path)
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start tinybot: %w", err)
		}
		rep, err := pr.wait("direct", 0, reportTimeout)
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil {
			return err
		}
		r.add(figDirect, ms(rep.at.Sub(t0)))
	}
	return nil
}

// measure takes every figure of one peer.
func measure(c config, p peer, pr *probe, r *results) error {
	one := []string{"b001"}
	var rep report
	// Cold start: the daemon (for lifeline, the agent; its dashboard is
	// already up) starts and starts the bot. The last round stays up.
	for i := range c.n {
		pr.drain()
		t0 := time.Now()
		if err := p.Start(one); err != nil {
			return err
		}
		var err error
		if rep, err = pr.wait("b001", 0, reportTimeout); err != nil {
			return fmt.Errorf("cold start: %w", err)
		}
		r.add(figCold, ms(rep.at.Sub(t0)))
		if i < c.n-1 {
			if err := stopAll(p, pr, c.tinybot); err != nil {
				return err
			}
		}
	}
	time.Sleep(c.settle)
	rss, pss := memKB(p.Daemons())
	r.add(figRSS1, float64(rss)/1024)
	r.add(figPSS1, float64(pss)/1024)

	for range c.n {
		pr.drain()
		t0 := time.Now()
		syscall.Kill(rep.pid, syscall.SIGKILL)
		next, err := pr.wait("b001", rep.pid, reportTimeout)
		if err != nil {
			return fmt.Errorf("respawn after SIGKILL: %w", err)
		}
		r.add(figKill, ms(next.at.Sub(t0)))
		rep = next
	}

	for range c.n {
		pr.drain()
		t0 := time.Now()
		if _, err := timed(p.Restart("b001")); err != nil {
			return err
		}
		done := time.Now()
		next, err := pr.wait("b001", rep.pid, reportTimeout)
		if err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		// Until the new bot runs and the command has returned: a user
		// has neither sooner.
		end := next.at
		if done.After(end) {
			end = done
		}
		r.add(figRestart, ms(end.Sub(t0)))
		rep = next
	}

	for range c.n {
		d, err := timed(p.Status())
		if err != nil {
			return err
		}
		r.add(figStatus, ms(d))
	}
	if err := stopAll(p, pr, c.tinybot); err != nil {
		return err
	}

	names := make([]string, c.bots)
	for i := range names {
		names[i] = fmt.Sprintf("b%03d", i+1)
	}
	pr.drain()
	t0 := time.Now()
	if err := p.Start(names); err != nil {
		return err
	}
	got, err := pr.waitAll(names, nil, 60*time.Second)
	if err != nil {
		return fmt.Errorf("start %d bots: %w", c.bots, err)
	}
	var last time.Time
	for _, g := range got {
		if g.at.After(last) {
			last = g.at
		}
	}
	r.add(figStartN, ms(last.Sub(t0)))
	time.Sleep(c.settle)
	rss, pss = memKB(p.Daemons())
	r.add(figRSSN, float64(rss)/1024)
	r.add(figPSSN, float64(pss)/1024)
	r.add(figCPUN, cpuPercent(p.Daemons(), c.cpuWindow))
	r.notes = append(r.notes, p.Note(c.bots))
	return stopAll(p, pr, c.tinybot)
}

// stopAll stops the daemon and makes sure no bot of it is left, so that
// the next start is cold (a lifeline agent would adopt a live bot).
func stopAll(p peer, pr *probe, bot string) error {
	if err := p.Stop(); err != nil {
		return err
	}
	if !waitGone(pr.reported(), bot, 10*time.Second) {
		reap(pr.reported(), bot)
		return errors.New(p.Name() + " left a bot running after it stopped")
	}
	return nil
}

// printTable prints each figure's median per peer, with its ratio to the
// best peer's.
func printTable(c config, w io.Writer, base *results, order []string, all map[string]*results) {
	fmt.Fprintf(w, "median of n=%d (memory and CPU: one reading); N=%d bots; CPU over %s; ratio to the best peer in ( )\n\n", c.n, c.bots, c.cpuWindow)
	fmt.Fprintf(w, "%-42s", "figure")
	for _, name := range order {
		fmt.Fprintf(w, "  %-20s", name)
	}
	fmt.Fprintln(w)
	for _, fig := range figureOrder {
		label := strings.Replace(fig, " N ", fmt.Sprintf(" %d ", c.bots), 1)
		unit := figureUnit[fig]
		if fig == figDirect {
			if v, ok := base.samples[fig]; ok {
				fmt.Fprintf(w, "%-42s  %s (the same bot, no supervisor)\n", label, fmtValue(median(v), unit))
			}
			continue
		}
		best := -1.0
		for _, name := range order {
			if v, ok := all[name].samples[fig]; ok {
				if m := median(v); best < 0 || m < best {
					best = m
				}
			}
		}
		fmt.Fprintf(w, "%-42s", label)
		for _, name := range order {
			r := all[name]
			cell := "-"
			switch v, ok := r.samples[fig]; {
			case r.skipped != "":
				cell = "skipped"
			case ok:
				m := median(v)
				ratio := "x1.0"
				if best > 0 {
					ratio = fmt.Sprintf("x%.1f", m/best)
				} else if m > 0 {
					ratio = "best is 0"
				}
				cell = fmtValue(m, unit) + " (" + ratio + ")"
			}
			fmt.Fprintf(w, "  %-20s", cell)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "How: tinybot (scripts/bench/tinybot, static Go) reports \"NAME PID\" on a unix datagram socket as it starts;")
	fmt.Fprintln(w, "  every start figure ends when that report arrives. Restart ends when the new bot has reported AND the command")
	fmt.Fprintln(w, "  returned. Status: lifeline status, supervisorctl status, pm2 jlist, exec to exit. Memory from /proc/PID/status")
	fmt.Fprintln(w, "  and smaps_rollup of the daemon(s) only (not the bots); CPU from utime+stime (10 ms ticks) of the daemon(s).")
	fmt.Fprintln(w, "  Cold start: lifeline = agent start (dashboard already up); supervisord = supervisord -c; PM2 = pm2 start with no daemon.")
	fmt.Fprintln(w, "  Backoff after quick deaths is off in every peer. Shared 2-core machine: figures are noisy.")
	for _, name := range order {
		r := all[name]
		switch {
		case r.skipped != "":
			fmt.Fprintf(w, "  %s skipped: %s\n", name, r.skipped)
		case r.err != nil:
			fmt.Fprintf(w, "  %s stopped early: %v\n", name, r.err)
		}
		for _, n := range r.notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	fmt.Fprintln(w, "\nspread (min / median / p95 / max):")
	for _, name := range append([]string{"direct"}, order...) {
		r := base
		if name != "direct" {
			r = all[name]
		}
		for _, fig := range figureOrder {
			if v := r.samples[fig]; len(v) > 1 {
				fmt.Fprintf(w, "  %-12s %-42s %8.2f %8.2f %8.2f %8.2f ms\n", name, fig, slices.Min(v), median(v), percentile(v, 95), slices.Max(v))
			}
		}
	}
}

func fmtValue(v float64, unit string) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	case "MB":
		return fmt.Sprintf("%.1f MB", v)
	case "%":
		return fmt.Sprintf("%.2f %%", v)
	}
	return fmt.Sprint(v)
}

// hostLine names the date, machine and versions a run was measured on.
func hostLine(c config) string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	syscall.Uname(&u)
	kernel := utsString(u.Release[:])
	version, _ := exec.Command(c.lifeline, "version").Output()
	return fmt.Sprintf("%s, %s, %d cores, Linux %s, %s, lifeline %s",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), model, runtime.NumCPU(), kernel, runtime.Version(), strings.TrimSpace(string(version)))
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
