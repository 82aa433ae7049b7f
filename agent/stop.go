package agent

import (
	"errors"
	"fmt"
	"syscall"
)

// stopper ends one bot, one step at a time. The supervisor decides when
// each step comes and in which order (beginStop, terminate, onEscalate,
// declareHung); a stopper only says how the platform takes it, so that the
// order is the same everywhere and can be checked on Linux with a recorder.
//
//   - term asks the bot to end: SIGTERM to it and its group on unix,
//     CTRL_BREAK_EVENT to its console process group on Windows.
//   - cont lets a stopped bot act on term: SIGCONT on unix, nothing on
//     Windows, which has no SIGSTOP.
//   - kill ends the bot and what it started: SIGKILL to it and its group on
//     unix, its Job Object terminated on Windows.
type stopper interface {
	term() error
	cont() error
	kill() error
}

// errUnknownStep refuses a signal that is not one of the stop steps.
var errUnknownStep = errors.New("not a stop step")

// takeStep maps the supervisor's signal-shaped steps (sigTerm, sigCont,
// sigKill) onto st.
func takeStep(st stopper, sig syscall.Signal) error {
	switch sig {
	case sigTerm:
		return st.term()
	case sigCont:
		return st.cont()
	case sigKill:
		return st.kill()
	}
	return fmt.Errorf("take step %v: %w", sig, errUnknownStep)
}

// stopper returns how p is ended: the platform's way (sysStopper), unless
// a test has set its own.
func (p *proc) stopper() stopper {
	if p.stop != nil {
		return p.stop
	}
	return sysStopper{p: p}
}

// errNoConsoleGroup: nothing proves the bot leads a console process group
// of this agent's making, so CTRL_BREAK_EVENT is not sent.
var errNoConsoleGroup = errors.New("no console process group of ours to send CTRL_BREAK_EVENT to")

// breakGroup returns the console process group that Windows' term may send
// CTRL_BREAK_EVENT to: only one this agent created, by starting the bot
// with CREATE_NEW_PROCESS_GROUP, which makes the bot's PID the group's ID.
// Given an ID that is no group, GenerateConsoleCtrlEvent reaches every
// process on the console, this agent included; an adopted bot was started
// by someone else, who may not have made it a group. Plain Go, so that the
// rule is tested on Linux.
func breakGroup(p *proc) (uint32, error) {
	if p.cmd == nil || p.pgid <= 0 || p.pgid != p.pid {
		return 0, fmt.Errorf("pid %d: %w", p.pid, errNoConsoleGroup)
	}
	return uint32(p.pgid), nil
}
