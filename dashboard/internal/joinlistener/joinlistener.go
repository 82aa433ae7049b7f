// Package joinlistener serves two listeners as one: the dashboard's local
// HTTP listener and a remote one (a tunnel), so one HTTP server takes the
// connections of both.
package joinlistener

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// joinedListener serves two listeners as one, so the one HTTP server takes
// connections from both: the local one decides (its errors are the
// listener's errors, and its address is the listener's address); the remote
// one only adds connections, and its failure is logged, not fatal, so the
// dashboard stays reachable locally when a tunnel dies. Close closes both.
type joinedListener struct {
	local, remote net.Listener
	log           *slog.Logger

	conns     chan net.Conn
	temporary chan error    // the local listener's timeouts, passed on one by one
	localDead chan struct{} // closed once the local listener failed for good
	localErr  error         // why; set before localDead is closed
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// Join returns a listener that accepts the connections of local and remote.
// Those from remote are marked: FromRemote tells them apart.
func Join(local, remote net.Listener, log *slog.Logger) net.Listener {
	j := &joinedListener{
		local: local, remote: remote, log: log,
		conns:     make(chan net.Conn),
		temporary: make(chan error),
		localDead: make(chan struct{}),
		done:      make(chan struct{}),
	}
	j.wg.Go(j.pumpLocal)
	j.wg.Go(j.pumpRemote)
	return j
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (j *joinedListener) pumpLocal() {
	for {
		c, err := j.local.Accept()
		if err != nil {
			if isTimeout(err) {
				select {
				case j.temporary <- err:
					continue
				case <-j.done:
					return
				}
			}
			j.localErr = err
			close(j.localDead)
			return
		}
		if !j.hand(c) {
			return
		}
	}
}

func (j *joinedListener) pumpRemote() {
	for {
		c, err := j.remote.Accept()
		if err != nil {
			if isTimeout(err) {
				select {
				case <-time.After(100 * time.Millisecond):
					continue
				case <-j.done:
					return
				}
			}
			select {
			case <-j.done:
			default:
				j.log.Error("remote access stopped; the dashboard is still served locally", "err", err)
			}
			return
		}
		if !j.hand(remoteConn{c}) {
			return
		}
	}
}

// remoteConn marks a connection that came through the remote listener.
type remoteConn struct{ net.Conn }

// FromRemote reports whether c came through the remote listener of a
// joined listener, so a handler can tell it from a local one.
func FromRemote(c net.Conn) bool {
	_, ok := c.(remoteConn)
	return ok
}

// hand passes c to Accept, or closes it when the listener is closed first.
func (j *joinedListener) hand(c net.Conn) bool {
	select {
	case j.conns <- c:
		return true
	case <-j.done:
		c.Close()
		return false
	}
}

// Accept returns the next connection of either listener, or the local
// listener's error.
func (j *joinedListener) Accept() (net.Conn, error) {
	select {
	case c := <-j.conns:
		return c, nil
	case err := <-j.temporary:
		return nil, err
	case <-j.localDead:
		return nil, j.localErr
	case <-j.done:
		return nil, net.ErrClosed
	}
}

// Addr is the local listener's address.
func (j *joinedListener) Addr() net.Addr { return j.local.Addr() }

// Close closes both listeners and waits until neither is accepting any more.
func (j *joinedListener) Close() error {
	j.closeOnce.Do(func() {
		close(j.done)
		j.closeErr = errors.Join(j.local.Close(), j.remote.Close())
		j.wg.Wait()
	})
	return j.closeErr
}
