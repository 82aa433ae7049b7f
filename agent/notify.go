package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/sdnotify"
)

// minNotifyBeatGap spaces the bus heartbeats the agent publishes on a bot's
// behalf for its WATCHDOG=1 datagrams: a bot that floods them must not
// flood the bus, and one heartbeat per gap says all there is to say.
const minNotifyBeatGap = 20 * time.Millisecond

// What status says about hang detection (bus.Status.HangDetection).
const (
	hangOn         = "on"
	hangOffTimeout = "off: --heartbeat-timeout is 0"
	hangOffNoBeat  = "off: no heartbeat yet; it arms at the bot's first heartbeat (bus, or sd_notify WATCHDOG=1 or READY=1)"
)

// strict reports whether a bot that never heartbeats counts as hung: the
// demo bot (it always heartbeats) and a bot run with RequireHeartbeat.
func (s *supervisor) strict() bool {
	return len(s.cfg.Command) == 0 || s.cfg.RequireHeartbeat
}

// waitReady reports whether a new bot counts as starting until it sends
// READY=1: asked for with Ready, or learnt from an earlier process of the
// bot. Without a notify socket there is nothing to wait for.
func (s *supervisor) waitReady() bool {
	return s.notify != nil && !s.strict() && (s.cfg.Ready == ReadyNotify || s.speaksNotify)
}

// openNotify opens the bot's own notify socket, so one bot's flood cannot
// push out another's messages. Its path is fixed by the PID file (in a
// private directory beside it, see sdnotify.ListenFor): a bot outlives a
// killed agent still holding NOTIFY_SOCKET, and the agent that adopts it
// must listen there. Where the platform has none the bot is supervised
// without it, and the log says so once per agent.
func (s *supervisor) openNotify() {
	pidFile, err := filepath.Abs(s.cfg.PIDFile)
	if err == nil {
		s.notify, err = sdnotify.ListenFor(filepath.Dir(pidFile), pidFile)
	}
	switch {
	case errors.Is(err, sdnotify.ErrUnsupported):
		say := func() {
			s.log.Info("sd_notify is not available on this platform; supervising without it (no NOTIFY_SOCKET for the bot)")
		}
		if s.noNotify != nil {
			s.noNotify.Do(say)
		} else {
			say()
		}
	case err != nil:
		s.log.Warn("no sd_notify socket; supervising without it", "err", err)
	}
}

// notifyC is the channel of sd_notify messages, nil (never ready) without a
// socket.
func (s *supervisor) notifyC() <-chan sdnotify.Message {
	if s.notify == nil {
		return nil
	}
	return s.notify.Messages()
}

// onNotify handles one sd_notify message. Only the bot itself, or the main
// PID it named and that was proven its descendant, is listened to.
func (s *supervisor) onNotify(m sdnotify.Message) {
	p := s.p
	if p == nil || (m.PID != p.pid && (p.mainPID == 0 || m.PID != p.mainPID)) {
		s.log.Debug("ignore sd_notify message from another process", "pid", m.PID)
		return
	}
	if m.MainPID != 0 && m.MainPID != p.mainPID {
		// Checked now, while the sender is alive: a PID that is not the bot's
		// descendant could be anyone's, and its messages would speak for the bot.
		if ok, err := sdnotify.Descendant(m.MainPID, p.pid); ok && err == nil {
			p.mainPID = m.MainPID
		} else {
			s.log.Warn("ignore MAINPID: not a descendant of the bot", "mainpid", m.MainPID, "pid", p.pid, "err", err)
		}
	}
	if m.HasStatus {
		p.statusText = m.Status
	}
	if p.stopping != stopNone {
		return // on its way out: nothing below counts any more
	}
	switch {
	case m.WatchdogTrigger:
		s.declareHung(p, "the bot sent WATCHDOG=trigger")
		return
	case m.Stopping:
		s.selfStopping(p)
		return
	}
	if m.Ready {
		p.ready = true
		s.speaksNotify = true
		if s.cfg.HeartbeatTimeout > 0 {
			// It was handed WATCHDOG_USEC: a bot that says it is ready
			// knows the watchdog is on.
			p.armedAt = m.Received
		}
	}
	if m.Watchdog {
		p.lastHB = m.Received
		s.publishBeat(p, m.Received)
	}
	if m.Ready || m.Watchdog {
		if s.state == bus.StateStarting {
			s.completeStart()
		}
		s.armHang()
	}
}

// publishBeat publishes a bus heartbeat for a WATCHDOG=1, so the dashboard
// and everyone else see an sd_notify bot live as they see an SDK bot.
func (s *supervisor) publishBeat(p *proc, at time.Time) {
	if s.nc == nil || at.Sub(p.notifyBeatAt) < minNotifyBeatGap {
		return
	}
	p.notifyBeatAt = at
	p.notifySeq++
	hb := bus.Heartbeat{Name: s.cfg.Name, PID: p.pid, Host: s.host, Seq: p.notifySeq,
		Time: at.UTC(), StartedAt: p.startedAt.UTC()}
	if err := s.nc.Publish(bus.HeartbeatSubject(s.cfg.Name), bus.Encode(hb)); err != nil {
		s.log.Debug("publish heartbeat for WATCHDOG=1", "err", err)
	}
}

// selfStopping handles STOPPING=1: the bot is shutting down on its own, so
// the exit that follows is not a crash. Should it never exit, it is sent
// SIGTERM after StopTimeout and SIGKILL after as long again.
func (s *supervisor) selfStopping(p *proc) {
	p.stopping = stopSelf
	s.state = bus.StateStopping
	stopTimer(&s.hangT)
	// terminate arms the SIGKILL StopTimeout after stopAt: counted from
	// now, it would follow the SIGTERM at once, leaving no time to act on it.
	p.stopAt = time.Now().Add(s.cfg.StopTimeout)
	stopTimer(&s.escalateT)
	s.escalateT = time.NewTimer(s.cfg.StopTimeout)
	s.log.Info("bot says it is stopping (STOPPING=1)", "pid", p.pid)
}

// hangDetection says whether the bot's hangs are detected now, and if not,
// why not, for status.
func (s *supervisor) hangDetection(p *proc) string {
	switch {
	case s.state == bus.StateStarting && s.waitReady():
		return hangOn // no READY=1 within StartTimeout is a hang
	case s.cfg.HeartbeatTimeout <= 0:
		return hangOffTimeout
	case s.strict() || p.armed():
		return hangOn
	}
	return hangOffNoBeat
}

// declareHung kills a hung bot and reports why.
func (s *supervisor) declareHung(p *proc, reason string) {
	s.state = bus.StateHung
	s.emit(bus.EventHung, p.pid, reason, "")
	if s.inPhase(opStarting) {
		s.finishOp(bus.Reply{Error: "bot started but is hung: " + reason})
	}
	// A hung bot cannot shut down gracefully; kill it outright.
	p.stopping = stopHung
	stopTimer(&s.hangT)
	s.signal(p, sigKill)
}

// hangReason says why a bot whose hang timer fired is hung.
func (s *supervisor) hangReason(p *proc) string {
	switch {
	case p.armed() || p.adopted:
		return fmt.Sprintf("no heartbeat for %s", s.cfg.HeartbeatTimeout)
	case s.strict():
		return fmt.Sprintf("no first heartbeat within %s", s.cfg.StartTimeout)
	}
	return fmt.Sprintf("no READY=1 within %s", s.cfg.StartTimeout)
}
