//go:build !unix && !windows

package agent

import (
	"errors"
	"syscall"
)

// Neither unix nor Windows (plan9, wasip1, js): nothing here is known to
// run, it only has to compile. There are no process groups, so a bot is
// stopped by signalling it alone.

func sysProcAttr() *syscall.SysProcAttr { return nil }

func getpgid(int) (int, error) { return 0, errors.New("process groups are not supported here") }

func signalGroup(int, syscall.Signal) {}

func signalName(sig syscall.Signal) string { return sig.String() }

const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
	sigCont = syscall.Signal(0x12)
)

// sysStopper sends each step to the bot alone, through its watcher.
type sysStopper struct{ p *proc }

func (s sysStopper) term() error { return s.p.watch.signal(sigTerm) }
func (s sysStopper) cont() error { return s.p.watch.signal(sigCont) }
func (s sysStopper) kill() error { return s.p.watch.signal(sigKill) }

func createdNow(p *proc) (int64, error) { return p.ps.CreateTime() }

func inGroup(*proc, int) bool { return false }
