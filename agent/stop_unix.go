//go:build unix

package agent

import "syscall"

// sysStopper ends a bot with signals: each step goes to the bot through its
// watcher (a pidfd on Linux, so it cannot reach a recycled PID), then to its
// process group when it leads one, so children it spawned get it too.
type sysStopper struct{ p *proc }

func (s sysStopper) term() error { return s.send(syscall.SIGTERM) }
func (s sysStopper) cont() error { return s.send(syscall.SIGCONT) }
func (s sysStopper) kill() error { return s.send(syscall.SIGKILL) }

func (s sysStopper) send(sig syscall.Signal) error {
	if err := s.p.watch.signal(sig); err != nil {
		return err
	}
	if s.p.pgid > 0 {
		signalGroup(s.p.pgid, sig)
	}
	return nil
}

// createdNow is p's create time for verify. gopsutil caches it after its
// first read, so on unix this is the recorded value (verify says why that
// is left so).
func createdNow(p *proc) (int64, error) { return p.ps.CreateTime() }

// inGroup reports whether pid is in the process group p leads.
func inGroup(p *proc, pid int) bool {
	if p.pgid <= 0 {
		return false
	}
	pg, err := getpgid(pid)
	return err == nil && pg == p.pgid
}
