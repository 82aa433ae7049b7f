//go:build linux

package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// peer is one supervisor under test. Each runs tinybot with the same
// arguments and $BENCH_SOCK, with its backoff after a quick death turned
// off, so that every bot killed in a row comes back at once.
type peer interface {
	Name() string
	// Start starts the daemon supervising the bots names, cold.
	Start(names []string) error
	// Stop stops the daemon and its bots.
	Stop() error
	Restart(name string) *exec.Cmd
	Status() *exec.Cmd
	// Daemons are the processes counted as the supervisor.
	Daemons() []int
	// Note says how the peer ran, for the table's footnotes.
	Note(bots int) string
	// Close ends whatever outlives Stop.
	Close()
}

// diesWithHarness makes a daemon stop (SIGTERM: gracefully, with its
// bots) if the harness dies without stopping it.
func diesWithHarness() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// killWait stops a child process with sig and waits for it.
func killWait(cmd *exec.Cmd, sig syscall.Signal, timeout time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
	}
}

// --- lifeline -------------------------------------------------------------

// lifelinePeer runs one dashboard (the bus that status and restart go
// through) for the whole run, and agents: one per bot, or one for all bots
// with --config when the binary has it.
type lifelinePeer struct {
	bin, bot, dir, sock string
	natsURL             string
	dash                *exec.Cmd
	agents              []*exec.Cmd
	hasConfig           bool
	usedConfig          bool
	heartbeatTimeout    string // for --config bots; empty: "0s", hang detection off
}

func newLifeline(bin, bot, dir, sock string) (*lifelinePeer, error) {
	p := &lifelinePeer{bin: bin, bot: bot, dir: dir, sock: sock}
	help, _ := exec.Command(bin, "agent", "--help").CombinedOutput()
	p.hasConfig = strings.Contains(string(help), "--config")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make lifeline dir: %w", err)
	}
	out, err := os.Create(filepath.Join(dir, "dashboard.out"))
	if err != nil {
		return nil, fmt.Errorf("create dashboard output: %w", err)
	}
	defer out.Close()
	p.dash = exec.Command(bin, "dashboard", "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--data", "data")
	p.dash.Dir, p.dash.Env, p.dash.Stdout, p.dash.Stderr = dir, cleanEnv(), out, out
	p.dash.SysProcAttr = diesWithHarness()
	if err := p.dash.Start(); err != nil {
		return nil, fmt.Errorf("start dashboard: %w", err)
	}
	p.natsURL, err = waitFileLine(out.Name(), "bus:", 20*time.Second)
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *lifelinePeer) Name() string { return "lifeline" }

func (p *lifelinePeer) agentCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(p.bin, append([]string{"agent", "--nats-url", p.natsURL, "--stop-bot-on-exit"}, args...)...)
	cmd.Dir, cmd.Env = p.dir, cleanEnv("BENCH_SOCK="+p.sock)
	cmd.SysProcAttr = diesWithHarness()
	return cmd
}

func (p *lifelinePeer) Start(names []string) error {
	p.agents, p.usedConfig = nil, false
	if len(names) > 1 && p.hasConfig {
		var b strings.Builder
		hb := cmp.Or(p.heartbeatTimeout, "0s")
		fmt.Fprintf(&b, "[defaults]\nheartbeat_timeout = %q\nbackoff_reset = \"1ms\"\nstop_bot_on_exit = true\n", hb)
		for _, n := range names {
			fmt.Fprintf(&b, "\n[bot.%s]\ncommand = [%q, %q]\n", n, p.bot, n)
		}
		file := filepath.Join(p.dir, "bots.toml")
		if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
			return fmt.Errorf("write agent config: %w", err)
		}
		p.usedConfig = true
		return p.startAgent(p.agentCmd("--config", file))
	}
	for _, n := range names {
		if err := p.startAgent(p.agentCmd("--name", n, "--heartbeat-timeout", "0", "--backoff-reset", "1ms", "--", p.bot, n)); err != nil {
			return err
		}
	}
	return nil
}

func (p *lifelinePeer) startAgent(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	p.agents = append(p.agents, cmd)
	return nil
}

func (p *lifelinePeer) Stop() error {
	for _, a := range p.agents {
		a.Process.Signal(syscall.SIGTERM)
	}
	for _, a := range p.agents {
		killWait(a, syscall.SIGTERM, 20*time.Second)
	}
	p.agents = nil
	return nil
}

func (p *lifelinePeer) client(args ...string) *exec.Cmd {
	cmd := exec.Command(p.bin, args...)
	cmd.Dir, cmd.Env = p.dir, cleanEnv("NATS_URL="+p.natsURL)
	return cmd
}

func (p *lifelinePeer) Restart(name string) *exec.Cmd { return p.client("restart", name) }
func (p *lifelinePeer) Status() *exec.Cmd             { return p.client("status", "b001") }

func (p *lifelinePeer) Daemons() []int {
	var pids []int
	for _, a := range p.agents {
		pids = append(pids, a.Process.Pid)
	}
	return pids
}

func (p *lifelinePeer) dashboardPID() int { return p.dash.Process.Pid }

func (p *lifelinePeer) Note(bots int) string {
	if bots > 1 && p.usedConfig {
		return fmt.Sprintf("lifeline: one agent --config with %d bots", bots)
	}
	if bots > 1 {
		return fmt.Sprintf("lifeline: %d separate agents (this binary's agent has no --config yet), summed", bots)
	}
	return "lifeline: one agent per bot"
}

func (p *lifelinePeer) Close() {
	p.Stop()
	killWait(p.dash, syscall.SIGTERM, 10*time.Second)
}

// --- supervisord ----------------------------------------------------------

// supervisordPeer runs supervisord in the foreground with its own config and
// socket in the run's temporary directory, never the system's.
type supervisordPeer struct {
	supervisord, supervisorctl, bot, dir, sock string
	conf                                       string
	daemon                                     *exec.Cmd
}

func newSupervisord(supervisord, supervisorctl, bot, dir, sock string) (*supervisordPeer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make supervisord dir: %w", err)
	}
	return &supervisordPeer{supervisord: supervisord, supervisorctl: supervisorctl, bot: bot, dir: dir, sock: sock,
		conf: filepath.Join(dir, "supervisord.conf")}, nil
}

func (p *supervisordPeer) Name() string { return "supervisord" }

func (p *supervisordPeer) Start(names []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, `[unix_http_server]
file=%[1]s/supervisor.sock

[supervisord]
nodaemon=true
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s
user=root

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%[1]s/supervisor.sock
`, p.dir)
	for _, n := range names {
		// startsecs=0 and a large startretries: no backoff after a quick
		// death, as the other peers are configured.
		fmt.Fprintf(&b, "\n[program:%s]\ncommand=%s %s\nautorestart=true\nstartsecs=0\nstartretries=1000000\nenvironment=BENCH_SOCK=\"%s\"\n", n, p.bot, n, p.sock)
	}
	if err := os.WriteFile(p.conf, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write supervisord config: %w", err)
	}
	p.daemon = exec.Command(p.supervisord, "-c", p.conf)
	p.daemon.Env = cleanEnv()
	p.daemon.SysProcAttr = diesWithHarness()
	if err := p.daemon.Start(); err != nil {
		return fmt.Errorf("start supervisord: %w", err)
	}
	return nil
}

func (p *supervisordPeer) Stop() error {
	killWait(p.daemon, syscall.SIGTERM, 30*time.Second)
	p.daemon = nil
	return nil
}

func (p *supervisordPeer) ctl(args ...string) *exec.Cmd {
	cmd := exec.Command(p.supervisorctl, append([]string{"-c", p.conf}, args...)...)
	cmd.Env = cleanEnv()
	return cmd
}

func (p *supervisordPeer) Restart(name string) *exec.Cmd { return p.ctl("restart", name) }

// Status: supervisorctl exits 3 when a program is not running, which the
// harness would take for a failure; with one running bot it exits 0.
func (p *supervisordPeer) Status() *exec.Cmd { return p.ctl("status") }

func (p *supervisordPeer) Daemons() []int {
	if p.daemon == nil {
		return nil
	}
	return []int{p.daemon.Process.Pid}
}

func (p *supervisordPeer) Note(int) string {
	return "supervisord: one daemon, [program:x] autorestart=true startsecs=0"
}

func (p *supervisordPeer) Close() { p.Stop() }

// --- PM2 ------------------------------------------------------------------

// pm2Peer runs PM2 with its own PM2_HOME in the run's temporary directory,
// so the user's PM2, if any, is never touched.
type pm2Peer struct {
	pm2, bot, dir, sock, home string
}

func newPM2(pm2, bot, dir, sock string) (*pm2Peer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make pm2 dir: %w", err)
	}
	return &pm2Peer{pm2: pm2, bot: bot, dir: dir, sock: sock, home: filepath.Join(dir, "home")}, nil
}

func (p *pm2Peer) Name() string { return "PM2" }

func (p *pm2Peer) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(p.pm2, args...)
	cmd.Dir, cmd.Env = p.dir, cleanEnv("PM2_HOME="+p.home, "BENCH_SOCK="+p.sock)
	return cmd
}

func (p *pm2Peer) Start(names []string) error {
	type app struct {
		Name        string            `json:"name"`
		Script      string            `json:"script"`
		Args        []string          `json:"args"`
		Interpreter string            `json:"interpreter"`
		ExecMode    string            `json:"exec_mode"`
		Autorestart bool              `json:"autorestart"`
		MinUptime   int               `json:"min_uptime"`
		MaxRestarts int               `json:"max_restarts"`
		OutFile     string            `json:"out_file"`
		ErrFile     string            `json:"error_file"`
		Env         map[string]string `json:"env"`
	}
	var apps []app
	for _, n := range names {
		// min_uptime 0 and many max_restarts: no "errored" stop after quick
		// deaths, as the other peers are configured.
		apps = append(apps, app{Name: n, Script: p.bot, Args: []string{n}, Interpreter: "none", ExecMode: "fork",
			Autorestart: true, MinUptime: 0, MaxRestarts: 1000000, OutFile: "/dev/null", ErrFile: "/dev/null",
			Env: map[string]string{"BENCH_SOCK": p.sock}})
	}
	data, _ := json.Marshal(map[string]any{"apps": apps})
	file := filepath.Join(p.dir, "ecosystem.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return fmt.Errorf("write pm2 ecosystem: %w", err)
	}
	_, err := timed(p.cmd("start", file))
	return err
}

func (p *pm2Peer) Stop() error {
	_, err := timed(p.cmd("kill"))
	return err
}

func (p *pm2Peer) Restart(name string) *exec.Cmd { return p.cmd("restart", name) }
func (p *pm2Peer) Status() *exec.Cmd             { return p.cmd("jlist") }

func (p *pm2Peer) Daemons() []int {
	data, err := os.ReadFile(filepath.Join(p.home, "pm2.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return nil
	}
	return []int{pid}
}

func (p *pm2Peer) Note(int) string {
	return "PM2: one God daemon, fork mode, interpreter none, min_uptime 0, own PM2_HOME"
}

func (p *pm2Peer) Close() { p.Stop() }
