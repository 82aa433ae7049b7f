package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"github.com/lifeline-dev/lifeline/internal/sdnotify"
)

// start adopts the bot holding the PID file, or starts a new one.
func (s *supervisor) start(reason, by string) {
	stopTimer(&s.backoffT)
	s.nextStart = time.Time{}
	s.lookFor(func(p *proc, err error) {
		switch {
		case err != nil:
			s.failStart(err)
		case p != nil:
			s.adopt(p)
		default:
			s.spawnAndStart(reason, by)
		}
	})
}

// spawnAndStart starts a new bot, found no running one.
func (s *supervisor) spawnAndStart(reason, by string) {
	s.problem = "" // spawn may set a new one that does not stop the bot
	p, err := s.spawn()
	if le := (*pidfile.LockedError)(nil); errors.As(err, &le) {
		// A bot appeared between the look and the lock (started by hand).
		s.lookFor(func(p *proc, err error) {
			if p != nil {
				s.adopt(p)
				return
			}
			if err == nil {
				err = le
			}
			s.failStart(err)
		})
		return
	}
	if err != nil {
		s.failStart(err)
		return
	}
	if s.startedOnce {
		s.restarts++
	}
	s.startedOnce = true
	s.p = p
	s.state = bus.StateStarting
	s.watch(p)
	s.emit(bus.EventStarted, p.pid, reason, by)
	switch {
	case s.waitReady():
		// starting until READY=1, for at most StartTimeout (hangDeadline)
	case s.cfg.HeartbeatTimeout == 0 || !s.strict():
		// No heartbeats to wait for, or none required: a program that
		// sends none runs, and hang detection arms if it ever does.
		s.completeStart()
	}
	s.armHang()
}

// spawn starts the bot with the locked PID file handed down (pidfile's
// PassTo), so the lock lives exactly as long as the bot, even if this agent
// dies first.
func (s *supervisor) spawn() (*proc, error) {
	pf, err := pidfile.Acquire(s.cfg.PIDFile)
	if err != nil {
		return nil, err
	}
	argv := s.cfg.command()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.cfg.Dir
	cmd.Env = append(sdnotify.ChildEnv(append(os.Environ(), s.cfg.Env...), s.notify, s.cfg.HeartbeatTimeout),
		"NATS_URL="+s.cfg.NATSURL,
		"LIFELINE_NATS_URL="+s.cfg.NATSURL, // beats a different one inherited from our environment
		"LIFELINE_NAME="+s.cfg.Name,
		"LIFELINE_PID_FILE="+s.cfg.PIDFile,
	)
	if s.cfg.NATSCA != "" {
		cmd.Env = append(cmd.Env, "LIFELINE_NATS_CA="+s.cfg.NATSCA)
	}
	if seed := s.cfg.BotLogin.Seed(); seed != "" {
		// The environment, never argv: only the same user may read it. The
		// agent's own seed file, if it was named there, is not handed on.
		cmd.Env = append(cmd.Env, bus.EnvSeed+"="+seed, "LIFELINE_NATS_NKEY=")
	}
	cmd.SysProcAttr = sysProcAttr()
	// After SysProcAttr, which PassTo adds the handle to on Windows.
	fdEnv, err := pf.PassTo(cmd)
	if err != nil {
		pf.Remove()
		return nil, err
	}
	cmd.Env = append(cmd.Env, fdEnv)
	// The capture's pipes (logs.go), the same for every respawn; the bot
	// matters more than its log, so it starts even without one.
	stdout, stderr, closeOut := s.botOutput()
	defer closeOut()
	if stdout != nil {
		cmd.Stdout, cmd.Stderr = stdout, stderr
	}
	if err := cmd.Start(); err != nil {
		pf.Remove()
		return nil, fmt.Errorf("start bot: %w", err)
	}
	pid := cmd.Process.Pid
	if err := pf.WritePID(pid); err != nil {
		// A bot whose PID file says nothing could be found neither by the
		// next agent nor by `kill $(cat ...)`: do not leave it running.
		signalGroup(pid, sigKill)
		_ = cmd.Wait()
		pf.Remove()
		return nil, fmt.Errorf("pid file %s: %w", s.cfg.PIDFile, err)
	}
	pf.Close() // the child's copy now holds the lock
	p, err := inspect(pid)
	if err != nil {
		// Died already: its exit still arrives through the watcher, if we
		// can open one; otherwise reap it here.
		p = &proc{pid: pid, startedAt: time.Now()}
	}
	p.cmd = cmd
	p.pgid = pid // Setsid made it the leader of its own group
	p.spawnedAt = time.Now()
	w, err := newWatcher(pid, cmd)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("watch bot: %w", err)
	}
	p.watch = w
	return p, nil
}

// The PID file of a bot starting this instant is locked but not yet
// written: it is read again pidWrittenTries times, pidWrittenPoll apart,
// before it counts as unreadable.
const (
	pidWrittenTries = 10
	pidWrittenPoll  = 20 * time.Millisecond
)

// lookFor finds the live bot holding the PID file (see findRunning) and
// hands it, or nil, to then. The reads of a PID file not yet written are
// spaced by the loop's wait timer, not by sleeping (see onWaitTimer).
func (s *supervisor) lookFor(then func(*proc, error)) {
	if s.waiting != waitNone {
		// A look our caller began is still waiting: ours follows it, as it
		// followed a look that blocked.
		s.lookLater = append(s.lookLater, then)
		return
	}
	s.lookTries = 0
	s.lookThen = then
	s.readPIDFile()
}

func (s *supervisor) readPIDFile() {
	pid, err := pidfile.Read(s.cfg.PIDFile)
	s.lookTries++
	if errors.Is(err, pidfile.ErrGarbage) {
		// Locked but not yet written: a bot is starting this instant.
		s.lookErr = err
		s.waitFor(waitPIDWritten, pidWrittenPoll)
		return
	}
	s.endLook(s.findRunning(pid, err))
}

func (s *supervisor) endLook(p *proc, err error) {
	then := s.lookThen
	s.lookThen, s.lookErr = nil, nil
	then(p, err)
}

// findRunning returns the live bot holding the PID file, given what reading
// it returned, or nil when there is none. A PID file nobody holds, or one
// that names a process which does not hold it, is never trusted.
func (s *supervisor) findRunning(pid int, err error) (*proc, error) {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, pidfile.ErrStale):
		return nil, nil
	case errors.Is(err, pidfile.ErrGarbage):
		return nil, fmt.Errorf("pid file is locked but unreadable: %w", err)
	case err != nil:
		return nil, err // a symlink, another user's file: Read says which
	case pid == os.Getpid():
		return nil, fmt.Errorf("pid file %s names this agent (%d); refusing to adopt it", s.cfg.PIDFile, pid)
	}
	p, err := inspect(pid)
	if err != nil {
		return nil, fmt.Errorf("pid file %s names %d, which is not running, yet its lock is held by another process", s.cfg.PIDFile, pid)
	}
	w, err := newWatcher(pid, nil)
	if err != nil {
		return nil, fmt.Errorf("watch pid %d: %w", pid, err)
	}
	p.watch = w
	// Checked after the watcher is open, so the watcher is known to follow
	// the very process that passed.
	if err := p.verify(s.cfg.PIDFile); err != nil {
		w.close()
		return nil, fmt.Errorf("pid file %s names %d, which does not hold its lock: %w", s.cfg.PIDFile, pid, err)
	}
	return p, nil
}

func (s *supervisor) adopt(p *proc) {
	p.adopted = true
	p.spawnedAt = time.Now()
	s.startedOnce = true
	s.p = p
	s.problem = ""
	s.state = bus.StateStarting
	s.watch(p)
	s.emit(bus.EventAdopted, p.pid, "found running through its pid file", "")
	if s.cfg.HeartbeatTimeout == 0 || !s.strict() {
		s.completeStart()
	}
	s.armHang()
}

func (s *supervisor) watch(p *proc) {
	s.wg.Go(func() {
		if !p.watch.wait() {
			return
		}
		// Here, not in onExit, so that an exit the loop never gets to (the
		// agent is leaving) is still reaped.
		code, sig := p.settle(signalGroup)
		select {
		case s.exits <- exitInfo{p: p, code: code, signal: sig}:
		case <-s.done:
		}
	})
}

// failStart records why the bot could not be started and tries again later.
func (s *supervisor) failStart(err error) {
	s.problem = err.Error()
	s.log.Error("cannot start bot", "err", err)
	if s.op != nil {
		s.finishOp(bus.Reply{Error: "cannot start bot: " + err.Error()})
	}
	s.streak++
	s.scheduleStart(max(backoffDelay(s.streak, s.cfg.BackoffMin, s.cfg.BackoffMax), time.Second), err.Error())
}

func (s *supervisor) scheduleStart(d time.Duration, why string) {
	s.state = bus.StateBackoff
	s.nextStart = time.Now().Add(d)
	stopTimer(&s.backoffT)
	s.backoffT = time.NewTimer(d)
	s.emit(bus.EventBackoff, 0, fmt.Sprintf("next start in %s: %s", d.Round(time.Millisecond), why), "")
}

func (s *supervisor) onExit(e exitInfo) {
	p := e.p
	if p != s.p {
		return
	}
	p.watch.close()
	if p.pgid > 0 {
		// settle has SIGKILLed the children the leader left in its group.
		// Those that inherited the locked PID file keep the lock until
		// they are gone, and the next start must not find it held.
		s.unlockExit = e
		s.unlockBy = time.Now().Add(unlockWait)
		s.checkUnlocked()
		return
	}
	s.exited(e)
}

// The killed children of an exited bot release the PID file's lock within
// moments: it is read every unlockPoll, for up to unlockWait, after which
// the next start reports the lock.
const (
	unlockPoll = 5 * time.Millisecond
	unlockWait = time.Second
)

// checkUnlocked goes on with the exit once the PID file's lock is no longer
// held on behalf of the exited bot, or unlockWait has passed; until then it
// checks again on the loop's wait timer.
func (s *supervisor) checkUnlocked() {
	e := s.unlockExit
	held, err := pidfile.Read(s.cfg.PIDFile)
	if err == nil && held == e.p.pid && !time.Now().After(s.unlockBy) {
		s.waitFor(waitUnlocked, unlockPoll)
		return
	}
	s.unlockExit = exitInfo{}
	s.exited(e)
}

// exited handles the exit of the current bot, its PID file released.
func (s *supervisor) exited(e exitInfo) {
	p := e.p
	s.p = nil
	stopTimer(&s.hangT)
	stopTimer(&s.escalateT)
	exit := &bus.Exit{At: time.Now().UTC(), Code: e.code, Signal: e.signal}
	if exit.Signal == "" && p.cmd == nil && p.sentKill {
		exit.Signal = "killed" // adopted: we know only what we sent
	}
	uptime := time.Since(p.startedAt)
	s.lastExit = exit

	if s.exiting {
		exit.Reason = p.stopping.String()
		s.state = bus.StateStopped
		why := "agent exiting"
		if s.stopBot.Load() {
			why = "reloaded: removed from the config, or its settings changed"
		}
		s.emit(bus.EventStopped, p.pid, why, "")
		s.finished = true
		return
	}
	if s.inPhase(opStopping) {
		exit.Reason = "requested"
		if p.stopping == stopNone {
			exit.Reason = "exited while stopping"
		}
		s.afterStop(p)
		return
	}
	switch {
	case p.stopping == stopHung:
		exit.Reason = "hung"
		s.emit(bus.EventKilled, p.pid, "hung: no heartbeat", "")
	case p.stopping == stopSelf:
		// It said STOPPING=1 first: however it ended, it meant to.
		exit.Reason = "exited"
		s.emit(bus.EventExited, p.pid, "stopped on its own (STOPPING=1), "+exitText(exit), "")
	case exit.Code != 0 || exit.Signal != "":
		exit.Reason = "crashed"
		s.emit(bus.EventCrashed, p.pid, exitText(exit), "")
	default:
		exit.Reason = "exited"
		s.emit(bus.EventExited, p.pid, "exit code 0", "")
	}
	if s.op != nil {
		// The new bot of a start or restart died before its first heartbeat.
		s.finishOp(bus.Reply{Error: fmt.Sprintf("bot exited during start (%s); see its log", exitText(exit))})
	}
	if !s.want {
		s.state = bus.StateStopped
		return
	}
	s.streak = nextStreak(s.streak, uptime, s.cfg.BackoffReset)
	if d := backoffDelay(s.streak, s.cfg.BackoffMin, s.cfg.BackoffMax); d > 0 {
		s.scheduleStart(d, fmt.Sprintf("%d quick exits in a row", s.streak))
		return
	}
	s.start("respawn after "+exit.Reason, "")
}

func exitText(e *bus.Exit) string {
	if e.Signal != "" {
		return "signal " + e.Signal
	}
	if e.Code < 0 {
		return "exit status unknown"
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// afterStop continues a restart or stop once the old bot is gone.
func (s *supervisor) afterStop(old *proc) {
	switch s.op.op {
	case bus.OpRestart:
		s.op.phase = opStarting
		s.streak = 0
		s.start("restart requested", s.op.by())
	case bus.OpStop:
		s.state = bus.StateStopped
		s.emit(bus.EventStopped, old.pid, "stop requested", s.op.by())
		s.finishOp(bus.Reply{OK: true, PID: old.pid})
	}
}

// completeStart marks the bot running and answers the start or restart that
// was waiting for it.
func (s *supervisor) completeStart() {
	s.state = bus.StateRunning
	defer s.botRunning()
	if !s.inPhase(opStarting) {
		return
	}
	switch s.op.op {
	case bus.OpRestart:
		s.emit(bus.EventRestarted, s.p.pid, fmt.Sprintf("replaced pid %d", s.op.oldPID), s.op.by())
		s.finishOp(bus.Reply{OK: true, OldPID: s.op.oldPID, NewPID: s.p.pid, TookMS: time.Since(s.op.begun).Milliseconds()})
	case bus.OpStart:
		s.finishOp(bus.Reply{OK: true, PID: s.p.pid})
	}
}

// botRunning tells OnBotRunning that a bot now runs.
func (s *supervisor) botRunning() {
	if s.cfg.OnBotRunning != nil {
		s.cfg.OnBotRunning()
	}
}

func (s *supervisor) onHeartbeat(hb bus.Heartbeat) {
	p := s.p
	if p == nil {
		if !s.exiting && s.op == nil && s.want {
			// A bot started by hand while we waited: adopt it now.
			s.lookFor(func(q *proc, err error) {
				if err == nil && q != nil {
					s.adopt(q)
				}
			})
		}
		return
	}
	if !p.owns(hb.PID) || p.stopping != stopNone {
		return
	}
	p.lastHB = beatTime(hb.Time, time.Now())
	p.hb = &hb
	if s.state == bus.StateStarting {
		s.completeStart()
	}
	s.armHang()
}

// armHang sets the hang timer to the moment the bot will count as hung. A
// bot is judged only while the agent itself has been connected to the bus
// for the whole timeout: missing heartbeats mean nothing when the bus is down.
func (s *supervisor) armHang() {
	stopTimer(&s.hangT)
	if d, ok := s.hangDeadline(); ok {
		s.hangT = time.NewTimer(time.Until(d))
	}
}

func (s *supervisor) hangDeadline() (time.Time, bool) {
	p, to := s.p, s.cfg.HeartbeatTimeout
	if p == nil || p.stopping != stopNone || s.connectedSince.IsZero() || s.exiting {
		return time.Time{}, false
	}
	starting := s.state == bus.StateStarting
	if to <= 0 && !(starting && s.waitReady()) {
		return time.Time{}, false
	}
	var d time.Time
	switch {
	case p.armed():
		d = p.lastHB
		if p.armedAt.After(d) {
			d = p.armedAt
		}
		d = d.Add(to)
	case p.adopted && s.strict():
		d = p.spawnedAt.Add(to)
	case starting:
		// The first heartbeat of a strict bot, or READY=1.
		d = p.spawnedAt.Add(s.cfg.StartTimeout)
	default:
		// Running, and it has never shown it can heartbeat: its silence
		// proves nothing (see Agent.RequireHeartbeat).
		return time.Time{}, false
	}
	if c := s.connectedSince.Add(to); c.After(d) {
		d = c
	}
	return d, true
}

// beatTime is when a heartbeat counts as given: when the bot says it sent
// it, if that is at most lazyEvery (and a little, for the two clock
// readings) before it arrived, since a lazily read heartbeat arrives late;
// else when it arrived. So a bot's clock can make its heartbeat no newer
// than its arrival, and no older than that window. Kept on our monotonic
// clock, as an arrival minus a lag.
func beatTime(sent, arrived time.Time) time.Time {
	lag := arrived.Sub(sent)
	if lag < 0 || lag > lazyEvery+50*time.Millisecond {
		return arrived
	}
	return arrived.Add(-lag)
}

// roundTrip makes sure the bus carries messages, both ways, on both
// connections: on the heartbeats' one, hurried, so that whatever a bot sent
// before is in when it returns.
func (s *supervisor) roundTrip() error {
	if err := s.nc.FlushTimeout(time.Second); err != nil {
		return err
	}
	if s.hb == nil || s.hb == s.nc {
		return nil
	}
	s.lazy.hurry()
	defer s.lazy.calm()
	if err := s.hb.FlushTimeout(time.Second); err != nil {
		return fmt.Errorf("heartbeat connection: %w", err)
	}
	return nil
}

func (s *supervisor) onHangTimer() {
	d, ok := s.hangDeadline()
	if !ok {
		return
	}
	if time.Now().Before(d) {
		s.armHang()
		return
	}
	// Missing heartbeats prove a hang only if the bus carries messages: a
	// server cut off by the network still looks connected until its pings
	// fail. Check with a round trip before condemning the bot.
	if s.nc != nil {
		if err := s.roundTrip(); err != nil {
			s.log.Warn("bus round trip failed; not judging the bot until the bus answers", "err", err)
			s.connectedSince = time.Now()
			s.armHang()
			return
		}
		// The round trip brought in every heartbeat sent before it: one
		// may be waiting here, read late (see lazyconn_unix.go).
		for more := true; more; {
			select {
			case m := <-s.beats:
				s.onHeartbeatMsg(m)
			default:
				more = false
			}
		}
		if d, ok := s.hangDeadline(); !ok || time.Now().Before(d) {
			s.armHang()
			return
		}
	}
	s.declareHung(s.p, s.hangReason(s.p))
}

// beginStop asks the bot to stop and escalates: a shutdown request over the
// bus, then SIGTERM to its group (at once if the request fails), then
// SIGKILL when StopTimeout has passed.
func (s *supervisor) beginStop(p *proc, why stopReason) {
	// A stop already escalating (not a STOPPING=1 wait) keeps its clock: a
	// second one, say the agent exiting mid-restart, would restart it and
	// could bring the SIGKILL closer to the SIGTERM than StopTimeout/2.
	escalating := p.stopping != stopNone && p.stopping != stopSelf && !p.stopAt.IsZero()
	if p.stopping == stopNone {
		p.stopping = why
	}
	s.state = bus.StateStopping
	stopTimer(&s.hangT)
	if p.sentKill || escalating {
		return // already on its way out
	}
	p.stopAt = time.Now()
	stopTimer(&s.escalateT)
	s.escalateT = time.NewTimer(s.cfg.StopTimeout / 2)
	nc, subject := s.nc, bus.ShutdownSubject(s.cfg.Name)
	wait := min(s.cfg.StopTimeout/2, 2*time.Second)
	s.wg.Go(func() {
		ok := false
		if nc.IsConnected() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			msg, err := nc.RequestWithContext(ctx, subject, bus.Encode(bus.Request{RequestedBy: "agent"}))
			cancel()
			if err == nil {
				r, derr := bus.DecodeReply(msg.Data)
				ok = derr == nil && r.OK && p.owns(r.PID)
			}
		}
		select {
		case s.acks <- shutdownAck{p: p, ok: ok}:
		case <-s.done:
		}
	})
}

func (s *supervisor) onShutdownAck(a shutdownAck) {
	if a.p != s.p || a.ok || a.p.sentTerm || a.p.sentKill {
		return
	}
	s.terminate(a.p)
}

func (s *supervisor) onEscalate() {
	p := s.p
	if p == nil || p.stopping == stopNone {
		return
	}
	if !p.sentTerm {
		s.terminate(p)
		return
	}
	s.signal(p, sigKill)
}

// terminate sends SIGTERM, and SIGCONT so that a stopped (SIGSTOP) bot can
// act on it, then arms the final SIGKILL.
func (s *supervisor) terminate(p *proc) {
	s.signal(p, sigTerm)
	s.signal(p, sigCont)
	p.sentTerm = true
	stopTimer(&s.escalateT)
	s.escalateT = time.NewTimer(time.Until(p.stopAt.Add(s.cfg.StopTimeout)))
}

// signal sends sig to the bot after proving it is still the bot.
func (s *supervisor) signal(p *proc, sig syscall.Signal) {
	if err := p.verify(s.cfg.PIDFile); err != nil {
		// The bot we knew is gone and the PID may belong to someone
		// else now: never signal it. Its exit event follows.
		s.log.Warn("not signalling", "pid", p.pid, "err", err)
		return
	}
	if sig == sigKill {
		p.sentKill = true
	}
	if err := p.kill(sig); err != nil {
		s.log.Debug("signal bot", "pid", p.pid, "signal", sig.String(), "err", err)
	}
}

func (s *supervisor) onRequest(r *request) {
	if r.op == bus.OpStatus {
		_ = r.msg.Respond(bus.Encode(s.status()))
		return
	}
	if s.exiting {
		respondErr(r.msg, "503", "agent is shutting down")
		return
	}
	if s.op != nil {
		if s.op.op == r.op {
			s.op.reqs = append(s.op.reqs, r)
			return
		}
		s.queue = append(s.queue, r)
		return
	}
	s.begin(r)
}

func (s *supervisor) begin(r *request) {
	s.op = &operation{op: r.op, reqs: []*request{r}, begun: time.Now(), phase: opStopping}
	switch r.op {
	case bus.OpRestart:
		s.want = true
		if s.p == nil {
			s.op.phase = opStarting // nothing to stop
			s.streak = 0
			s.start("restart requested", s.op.by())
			return
		}
		s.op.oldPID = s.p.pid
		s.beginStop(s.p, stopRestart)
	case bus.OpStop:
		s.want = false
		if s.p == nil {
			stopTimer(&s.backoffT)
			s.nextStart = time.Time{}
			s.state = bus.StateStopped
			s.finishOp(bus.Reply{OK: true})
			return
		}
		s.op.oldPID = s.p.pid
		s.beginStop(s.p, stopRequested)
	case bus.OpStart:
		s.op.phase = opStarting
		s.want = true
		if s.p != nil {
			s.finishOp(bus.Reply{OK: true, PID: s.p.pid})
			return
		}
		s.streak = 0
		s.start("start requested", s.op.by())
	}
}

// finishOp answers every request of the current operation, then begins the
// next queued one.
func (s *supervisor) finishOp(reply bus.Reply) {
	op := s.op
	s.op = nil
	for _, r := range op.reqs {
		if reply.OK {
			_ = r.msg.Respond(bus.Encode(reply))
		} else {
			respondErr(r.msg, "500", reply.Error)
		}
	}
	for len(s.queue) > 0 && s.op == nil {
		next := s.queue[0]
		s.queue = s.queue[1:]
		s.begin(next)
		// Later queued requests for the same operation join it.
		rest := s.queue[:0]
		for _, q := range s.queue {
			if s.op != nil && q.op == s.op.op {
				s.op.reqs = append(s.op.reqs, q)
			} else {
				rest = append(rest, q)
			}
		}
		s.queue = rest
	}
}

func (s *supervisor) status() bus.Status {
	st := bus.Status{
		Name:     s.cfg.Name,
		State:    s.state,
		Restarts: s.restarts,
		LastExit: s.lastExit,
		Agent:    bus.AgentInfo{PID: os.Getpid(), Host: s.host, Connected: true, Bus: s.nc.ConnectedUrlRedacted()},
		Problem:  s.problem,
	}
	if !s.nextStart.IsZero() {
		t := s.nextStart.UTC()
		st.NextStartAt = &t
	}
	p := s.p
	if p == nil {
		return st
	}
	if st.Problem == "" && s.state == bus.StateRunning {
		st.Problem = s.pidFileProblem(p)
	}
	st.PID, st.Host = p.pid, s.host
	st.StatusText = p.statusText
	st.HangDetection = s.hangDetection(p)
	started := p.startedAt.UTC()
	st.StartedAt = &started
	if !p.lastHB.IsZero() {
		at := p.lastHB.UTC()
		age := time.Since(p.lastHB).Milliseconds()
		st.LastHeartbeatAt, st.HeartbeatAgeMS = &at, &age
	}
	if p.hb != nil {
		st.Stats, st.Version = p.hb.Stats, p.hb.Version
		if p.hb.Host != "" {
			st.Host = p.hb.Host
		}
	}
	if p.ps != nil {
		if cpu, err := p.ps.Percent(0); err == nil {
			st.CPUPercent = cpu
		}
		if mem, err := p.ps.MemoryInfo(); err == nil {
			st.RSSBytes = mem.RSS
		}
	}
	return st
}

// pidFileProblem checks that the PID file still names the running bot. When
// it is gone (its directory removed, say) the bot runs on, but `kill $(cat
// ...)` no longer works and a new agent would not find it and would start a
// second one: the operator must know.
func (s *supervisor) pidFileProblem(p *proc) string {
	pid, err := pidfile.Read(s.cfg.PIDFile)
	switch {
	case err == nil && p.owns(pid):
		return ""
	case err == nil:
		err = fmt.Errorf("it names pid %d", pid)
	}
	return fmt.Sprintf("pid file %s no longer names the bot (pid %d): %v; restart the bot to write it again",
		s.cfg.PIDFile, p.pid, err)
}
