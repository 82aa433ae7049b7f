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
