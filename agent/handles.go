package agent

import (
	"errors"
	"sync"
)

// errWatcherClosed: the watcher's handles are closed; it can no longer
// prove, stop or read anything.
var errWatcherClosed = errors.New("watcher is closed")

// handleGuard keeps a watcher's OS handles from being closed while they are
// in use (the Windows watcher's; plain Go, so that its bookkeeping is tested
// on Linux). Short uses run under its lock (use). The one long use, a wait
// blocked on the handles, cannot hold the lock, so it is marked instead
// (beginWait, endWait): a close during it only wakes the wait, and the
// handles are released when the wait has returned. Windows leaves closing a
// handle that a wait is blocked on undefined, and a closed handle's number
// may be reused for another object, so a late use must not reach it.
type handleGuard struct {
	mu       sync.Mutex
	waiting  bool
	closed   bool
	released bool
	release  func() // closes the handles; called once, under mu
}

// use runs f under the lock, unless the guard is closed: then f is not run
// and use returns errWatcherClosed.
func (g *handleGuard) use(f func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errWatcherClosed
	}
	return f()
}

// beginWait marks a wait on the handles as started; false means the guard
// is closed and there must be no wait.
func (g *handleGuard) beginWait() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.waiting {
		return false
	}
	g.waiting = true
	return true
}

// endWait marks the wait as over. It reports whether the guard was closed
// meanwhile, in which case the handles are released now, and what the wait
// saw does not count.
func (g *handleGuard) endWait() (closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiting = false
	if g.closed {
		g.releaseLocked()
	}
	return g.closed
}

// close closes the guard: wake (which ends a wait in progress) is called,
// and the handles are released at once unless a wait still uses them. A
// second close does nothing.
func (g *handleGuard) close(wake func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	if wake != nil {
		wake()
	}
	if !g.waiting {
		g.releaseLocked()
	}
}

func (g *handleGuard) releaseLocked() {
	if g.released {
		return
	}
	g.released = true
	if g.release != nil {
		g.release()
	}
}
