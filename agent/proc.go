package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"github.com/shirou/gopsutil/v4/process"
)

// errNotOurBot is returned when a process fails the identity check: it must
// never be signalled.
var errNotOurBot = errors.New("process is not the bot")

// proc is one bot process, started by this agent or adopted from its PID file.
type proc struct {
	pid       int
	pgid      int   // process group to signal; 0 when the bot does not lead its own group
	created   int64 // gopsutil create time (ms since the epoch), the identity proof
	startedAt time.Time
	cmd       *exec.Cmd // nil when adopted: we are not its parent
	ps        *process.Process

	watch *watcher
	stop  stopper // how it is ended; nil: the platform's way (see stopper)

	// mu orders signals to the group against the reaping of its leader:
	// signals go out only before the reap, while the leader's PID, and so
	// its group's ID, cannot belong to anyone else (see settle).
	mu     sync.Mutex
	reaped bool

	// Filled in by the supervisor while the process lives.
	spawnedAt time.Time // when this agent started or adopted it (monotonic)
	lastHB    time.Time // when its last heartbeat arrived, by our clock
	hb        *bus.Heartbeat
	stopping  stopReason // why we are stopping it; stopNone means an exit would be unexpected
	stopAt    time.Time
	sentKill  bool
	sentTerm  bool
	adopted   bool

	// What its sd_notify messages said (see onNotify).
	armedAt      time.Time // READY=1 while hang detection is on; zero before
	ready        bool      // READY=1 seen
	mainPID      int       // a proven MAINPID=, also listened to; 0 if none
	statusText   string    // the last STATUS=
	notifyBeatAt time.Time // the last bus heartbeat published for its WATCHDOG=1
	notifySeq    uint64
}

// armed reports whether the bot has shown it can heartbeat, so that its
// silence means a hang: a heartbeat (bus or WATCHDOG=1), or READY=1 while
// hang detection is on.
func (p *proc) armed() bool {
	return !p.lastHB.IsZero() || !p.armedAt.IsZero()
}

// stopReason says why the agent is stopping a bot. It is also the bot's
// stop state: stopNone means an exit would be unexpected, any other value
// that the bot is on its way out and its heartbeats no longer count. The
// first reason given stands (see beginStop).
type stopReason int

const (
	stopNone         stopReason = iota // not stopping
	stopHung                           // killed for missing heartbeats
	stopRestart                        // the first half of a restart request
	stopRequested                      // a stop request
	stopAgentExiting                   // the agent leaves with StopBotOnExit
	stopSelf                           // the bot said STOPPING=1
)

// String is the reason as the bot's last exit and the events report it.
func (r stopReason) String() string {
	switch r {
	case stopHung:
		return "hung"
	case stopRestart:
		return "restart requested"
	case stopRequested:
		return "stop requested"
	case stopAgentExiting:
		return "agent exiting"
	case stopSelf:
		return "stopping on its own"
	}
	return ""
}

// owns reports whether a heartbeat or reply from pid speaks for p: the bot
// itself, or a process in its group (a wrapper script's child); on Windows,
// in its Job Object.
func (p *proc) owns(pid int) bool {
	return pid == p.pid || inGroup(p, pid)
}

// exitInfo describes how a process ended.
type exitInfo struct {
	p      *proc
	code   int
	signal string
}

// inspect fills in the identity of a live process.
func inspect(pid int) (*proc, error) {
	ps, err := process.NewProcess(int32(pid))
	if err != nil {
		return nil, fmt.Errorf("find process %d: %w", pid, err)
	}
	created, err := ps.CreateTime()
	if err != nil {
		return nil, fmt.Errorf("create time of %d: %w", pid, err)
	}
	p := &proc{pid: pid, created: created, ps: ps, startedAt: time.UnixMilli(created)}
	if pg, err := getpgid(pid); err == nil && pg == pid {
		p.pgid = pg
	}
	return p, nil
}

// verify proves, right before a signal, that p is still the process we
// started or adopted: same create time, and for an adopted bot, still the
// holder of the PID file's lock. A recycled PID fails the check.
//
// On unix the create time compared is gopsutil's, which it reads once and
// caches, so that comparison proves nothing there; the proof is the rest:
// our unreaped child keeps its PID, an adopted bot must hold the PID file,
// and on Linux every signal goes through a pidfd. Reading the time again
// would not do: gopsutil derives it from the boot time, which moves when
// the clock is stepped, and a bot would then be refused its SIGKILL. On
// Windows it is read again through the held process handle.
func (p *proc) verify(pidPath string) error {
	if p.ps == nil {
		if p.cmd != nil {
			return nil // our unreaped child, signalled through its pidfd
		}
		return fmt.Errorf("%w: pid %d has no recorded identity", errNotOurBot, p.pid)
	}
	created, err := createdNow(p)
	if err != nil || created != p.created {
		return fmt.Errorf("%w: pid %d was recycled or is gone", errNotOurBot, p.pid)
	}
	if p.cmd != nil {
		return nil
	}
	held, err := pidfile.HeldBy(p.pid, pidPath)
	if err != nil || !held {
		return fmt.Errorf("%w: pid %d no longer holds %s", errNotOurBot, p.pid, pidPath)
	}
	return nil
}

// errReaped is returned by kill once the bot is reaped: its group's ID may
// be another group's by now.
var errReaped = errors.New("bot has exited and been reaped")

// kill takes one step of ending the bot (sigTerm, sigCont or sigKill; see
// stopper): on unix it sends that signal to the bot, and to its process
// group when it leads one, so children it spawned go too. The caller has
// just verified p.
//
// For a bot this agent started, the group signal cannot reach a stranger:
// only settle reaps the bot, and not while kill runs, so the leader is alive
// or an unreaped zombie, which holds its PID and hence the group's ID. An
// adopted bot is reaped by its own parent, whom nothing here can hold back;
// the PID it held stays reserved while anything in its group lives, so a
// stranger could be hit only if the bot and all its children died and the
// PID came round again in the moment since verify.
func (p *proc) kill(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return errReaped
	}
	return takeStep(p.stopper(), sig)
}

// settle finishes a bot that watch.wait saw exit: it SIGKILLs the children
// it left in its group, then reaps it. The order matters. Until the reap the
// leader is a zombie that keeps its PID, which is its group's ID, from being
// given to a new process: kill(-pgid) after the reap could, once PIDs wrap,
// hit an unrelated group that now bears the number. (Linux frees a PID only
// when no process uses it as PID, group or session ID.)
//
// Where watch.wait has to reap to learn of the exit (the unix systems
// other than Linux and macOS), the group is signalled after the reap, with
// the window kill describes for adopted bots. On Windows there is no group
// to signal by number: watch.reap ends what the bot left in its Job Object.
//
// sendGroup is signalGroup, but for a test that checks the leader is still
// an unreaped zombie when its group is signalled.
func (p *proc) settle(sendGroup func(pgid int, sig syscall.Signal)) (code int, sig string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pgid > 0 {
		sendGroup(p.pgid, sigKill)
	}
	code, sig = p.watch.reap()
	p.reaped = true
	return code, sig
}

// describeExit turns a wait status into an exit code and signal name.
func describeExit(state *os.ProcessState) (int, string) {
	if state == nil {
		return -1, ""
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, signalName(ws.Signal())
	}
	return state.ExitCode(), ""
}
