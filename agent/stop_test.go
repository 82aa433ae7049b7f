package agent

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

// recorder is a stopper that notes each step it is asked to take, and when,
// and takes none. The order of the steps is the supervisor's, the same on
// every platform; only how a step is taken differs (stop_unix.go,
// sys_windows.go). So the order checked here on Linux is Windows' too.
type recorder struct {
	mu    sync.Mutex
	start time.Time
	steps []string
}

func (r *recorder) note(step string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, step+"@"+time.Since(r.start).String())
	return nil
}

func (r *recorder) term() error { return r.note("term") }
func (r *recorder) cont() error { return r.note("cont") }
func (r *recorder) kill() error { return r.note("kill") }

func (r *recorder) taken() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.steps)
}

// stopTimeout is the StopTimeout of the escalation tests.
const stopTimeout = 10 * time.Second

// inspectSelf is the identity of the test process, which stands in for a
// bot: it passes verify, and the recorder never signals it.
func inspectSelf(t *testing.T) *proc {
	t.Helper()
	self, err := inspect(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return self
}

// newStopSupervisor returns a supervisor whose running bot is stopped
// through rec. Its bus connection never connected: the bus is down, so the
// shutdown request cannot be sent. The bot's cmd, never started, marks it
// as this agent's child, so that verify proves it by its create time alone.
func newStopSupervisor(t *testing.T, self *proc) (*supervisor, *proc, *recorder) {
	cfg := &Agent{Name: "bot", PIDFile: filepath.Join(t.TempDir(), "bot.pid"),
		HeartbeatTimeout: 5 * time.Second, StopTimeout: stopTimeout, Logger: slog.New(slog.DiscardHandler)}
	s := newSupervisor(cfg)
	s.nc = new(nats.Conn)
	rec := &recorder{start: time.Now()}
	p := &proc{pid: self.pid, created: self.created, ps: self.ps, cmd: exec.Command(os.Args[0]),
		stop: rec, startedAt: time.Now(), spawnedAt: time.Now()}
	s.p, s.state, s.connectedSince = p, bus.StateRunning, time.Now()
	return s, p, rec
}

// runEscalation fires the supervisor's escalation timer until none is
// armed, as the loop does.
func runEscalation(s *supervisor) {
	for s.escalateT != nil {
		<-s.escalateT.C
		s.escalateT = nil
		s.onEscalate()
	}
}

func checkSteps(t *testing.T, rec *recorder, want ...string) {
	t.Helper()
	if got := rec.taken(); !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
}

// The shutdown request cannot go (the bus is down): term (and cont, for a
// stopped bot) at once, kill at StopTimeout, nothing after.
func TestStopEscalationWhenShutdownRequestFails(t *testing.T) {
	self := inspectSelf(t)
	synctest.Test(t, func(t *testing.T) {
		s, p, rec := newStopSupervisor(t, self)
		s.beginStop(p, stopRequested)
		s.onShutdownAck(<-s.acks)
		runEscalation(s)
		s.wg.Wait()
		checkSteps(t, rec, "term@0s", "cont@0s", "kill@10s")
		if !p.sentTerm || !p.sentKill {
			t.Errorf("sentTerm %v, sentKill %v; want both", p.sentTerm, p.sentKill)
		}
	})
}

// The bot acknowledged the shutdown request but does not exit: term at half
// the StopTimeout, kill at StopTimeout.
func TestStopEscalationWhenShutdownIsAcknowledged(t *testing.T) {
	self := inspectSelf(t)
	synctest.Test(t, func(t *testing.T) {
		s, p, rec := newStopSupervisor(t, self)
		s.beginStop(p, stopRestart)
		a := <-s.acks
		a.ok = true // as a bot that answered the request would
		s.onShutdownAck(a)
		checkSteps(t, rec)
		runEscalation(s)
		s.wg.Wait()
		checkSteps(t, rec, "term@5s", "cont@5s", "kill@10s")
	})
}

// A second stop while the first escalates (the agent exiting mid-restart)
// keeps the first one's clock: term at half the StopTimeout after the first
// request, kill at StopTimeout. (The second used to restart the clock.)
func TestSecondStopKeepsTheFirstOnesClock(t *testing.T) {
	self := inspectSelf(t)
	synctest.Test(t, func(t *testing.T) {
		s, p, rec := newStopSupervisor(t, self)
		s.beginStop(p, stopRestart)
		a := <-s.acks
		a.ok = true
		s.onShutdownAck(a)
		time.Sleep(4 * time.Second) // fake time: the bubble's clock
		s.beginStop(p, stopAgentExiting)
		runEscalation(s)
		s.wg.Wait()
		checkSteps(t, rec, "term@5s", "cont@5s", "kill@10s")
		if p.stopping != stopRestart {
			t.Errorf("stop reason %v, want the first one's", p.stopping)
		}
	})
}

// A bot that said STOPPING=1 and never exits: term after StopTimeout, kill
// after as long again. (The kill used to follow the term at once.)
func TestStopEscalationAfterStoppingOnItsOwn(t *testing.T) {
	self := inspectSelf(t)
	synctest.Test(t, func(t *testing.T) {
		s, p, rec := newStopSupervisor(t, self)
		s.selfStopping(p)
		runEscalation(s)
		checkSteps(t, rec, "term@10s", "cont@10s", "kill@20s")
	})
}

// A hung bot cannot shut down gracefully: kill only, at once.
func TestHungBotIsKilledWithoutTerm(t *testing.T) {
	self := inspectSelf(t)
	synctest.Test(t, func(t *testing.T) {
		s, p, rec := newStopSupervisor(t, self)
		s.declareHung(p, "test")
		runEscalation(s)
		checkSteps(t, rec, "kill@0s")
		// A stop asked for afterwards adds nothing: it is on its way out.
		s.beginStop(p, stopRequested)
		runEscalation(s)
		checkSteps(t, rec, "kill@0s")
	})
}

// A bot whose PID now names another process (its create time differs) is
// never sent a step, however far the escalation goes.
func TestStopStepsNeverReachARecycledPID(t *testing.T) {
	self := inspectSelf(t)
	synctest.Test(t, func(t *testing.T) {
		s, p, rec := newStopSupervisor(t, self)
		p.created--
		s.beginStop(p, stopRequested)
		s.onShutdownAck(<-s.acks)
		runEscalation(s)
		s.wg.Wait()
		s.declareHung(p, "test")
		checkSteps(t, rec)
	})
}

// Once the bot is reaped no step reaches it: its group's ID may be another
// group's by now.
func TestStopStepsNeverReachAReapedBot(t *testing.T) {
	self := inspectSelf(t)
	synctest.Test(t, func(t *testing.T) {
		s, p, rec := newStopSupervisor(t, self)
		p.reaped = true
		s.beginStop(p, stopRequested)
		s.onShutdownAck(<-s.acks)
		runEscalation(s)
		s.wg.Wait()
		checkSteps(t, rec)
		if err := p.kill(sigKill); !errors.Is(err, errReaped) {
			t.Errorf("kill after the reap = %v, want errReaped", err)
		}
	})
}

// The signal-shaped steps map onto the stopper one to one; anything else
// is refused.
func TestTakeStepMapsSignalsToSteps(t *testing.T) {
	rec := &recorder{start: time.Now()}
	for _, sig := range []syscall.Signal{sigTerm, sigCont, sigKill} {
		if err := takeStep(rec, sig); err != nil {
			t.Fatalf("take step %v: %v", sig, err)
		}
	}
	if err := takeStep(rec, syscall.Signal(0)); !errors.Is(err, errUnknownStep) {
		t.Errorf("take step 0 = %v, want errUnknownStep", err)
	}
	got := rec.taken()
	for i, want := range []string{"term", "cont", "kill"} {
		if i >= len(got) || got[i][:len(want)] != want {
			t.Fatalf("steps %q, want term, cont, kill", got)
		}
	}
}

// CTRL_BREAK_EVENT goes only to a console process group this agent made:
// sent to a PID that leads no group, Windows would deliver it to every
// process on the console, the agent included. An adopted bot, or one whose
// recorded group is not its own PID, is refused.
func TestBreakGroupOnlyForAGroupWeMade(t *testing.T) {
	ours := exec.Command(os.Args[0])
	for _, c := range []struct {
		name string
		p    *proc
		want uint32
	}{
		{"started here", &proc{pid: 4242, pgid: 4242, cmd: ours}, 4242},
		{"adopted", &proc{pid: 4242, pgid: 4242, adopted: true}, 0},
		{"adopted, no group", &proc{pid: 4242}, 0},
		{"started here, no group", &proc{pid: 4242, cmd: ours}, 0},
		{"another group", &proc{pid: 4242, pgid: 1, cmd: ours}, 0},
		{"no pid", &proc{pid: 0, pgid: 0, cmd: ours}, 0},
	} {
		got, err := breakGroup(c.p)
		if got != c.want || (c.want == 0) != errors.Is(err, errNoConsoleGroup) {
			t.Errorf("%s: breakGroup = %d, %v; want %d", c.name, got, err, c.want)
		}
	}
}
