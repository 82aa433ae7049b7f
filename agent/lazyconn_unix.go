//go:build unix

package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The heartbeats of an agent's bots come over a bus connection of their
// own, read at most every lazyEvery, not as each arrives. A socket in the
// runtime's poller wakes the agent for every message, and with 100 bots
// beating once a second those wake-ups were nearly all of an idle agent's
// CPU (about 250 µs each on a small VM, mostly the kernel's and the
// scheduler's). Read lazily, the socket is out of the poller and a thread
// reads it in blocking reads, between which nobody waits on it: messages
// queue in the kernel for free and are taken in one read.
//
// Nothing is judged on a late heartbeat: a heartbeat's time is the bot's
// own (within lazyEvery of its arrival, else the arrival), and before a bot
// is declared hung the agent hurries the connection and makes a round trip
// on it, so that whatever the bot sent before is in.
const lazyEvery = 250 * time.Millisecond

// lazyDialer dials lazyConns for nats.go and keeps the current one, so
// that a hang check can hurry it.
type lazyDialer struct {
	every time.Duration
	// eager counts the round trips under way (see hurry): while there are
	// any, reads do not wait.
	eager atomic.Int32
	mu    sync.Mutex
	cur   *lazyConn
}

func newLazyDialer() *lazyDialer { return &lazyDialer{every: lazyEvery} }

// Dial implements nats.CustomDialer.
func (d *lazyDialer) Dial(network, address string) (net.Conn, error) {
	nc, err := (&net.Dialer{Timeout: 2 * time.Second}).Dial(network, address)
	if err != nil {
		return nil, err
	}
	c, err := newLazyConn(nc, d.every, &d.eager)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.cur = c
	d.mu.Unlock()
	return c, nil
}

// hurry makes the connection read at once, and go on so until calm is
// called: a round trip's answer is then read as soon as it comes.
func (d *lazyDialer) hurry() {
	d.eager.Add(1)
	d.mu.Lock()
	c := d.cur
	d.mu.Unlock()
	if c != nil {
		c.hurry()
	}
}

// calm ends what hurry began.
func (d *lazyDialer) calm() { d.eager.Add(-1) }

// lazyConn is a TCP connection read in blocking reads, at most one per
// every, outside the runtime's poller. Reads come from nats.go's read loop
// only, so the read side needs no lock.
type lazyConn struct {
	f             *os.File // blocking: not polled
	fd            int
	local, remote net.Addr
	every         time.Duration
	eager         *atomic.Int32 // the dialer's: no waiting while positive
	last          time.Time     // end of the last read
	hurryC        chan struct{}
	closed        chan struct{}
	closeOnce     sync.Once

	mu       sync.Mutex
	deadline bool // a read deadline is set: no waiting (nats.go's handshake)
}

// newLazyConn takes nc's socket over: a duplicate, made blocking, and nc
// closed, which takes the socket out of the poller.
func newLazyConn(nc net.Conn, every time.Duration, eager *atomic.Int32) (*lazyConn, error) {
	local, remote := nc.LocalAddr(), nc.RemoteAddr()
	sc, ok := nc.(syscall.Conn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("lazy bus connection: %T has no descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("lazy bus connection: %w", err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err == nil && dupErr != nil {
		err = dupErr
	}
	nc.Close() // out of the poller; the socket lives on in fd
	if fd < 0 || dupErr != nil {
		return nil, fmt.Errorf("lazy bus connection: dup: %w", errors.Join(err, dupErr))
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lazy bus connection: %w", err)
	}
	return &lazyConn{
		f: os.NewFile(uintptr(fd), "bus"), fd: fd, local: local, remote: remote, every: every, eager: eager,
		hurryC: make(chan struct{}, 1), closed: make(chan struct{}),
	}, nil
}

func (c *lazyConn) hurry() {
	select {
	case c.hurryC <- struct{}{}:
	default:
	}
}

// Read waits until every has passed since the last read (or a hurry), then
// reads what the kernel holds, blocking only if that is nothing.
func (c *lazyConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	lazy := !c.deadline && c.eager.Load() <= 0
	c.mu.Unlock()
	if wait := c.every - time.Since(c.last); lazy && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.hurryC:
		case <-c.closed:
			t.Stop()
			return 0, net.ErrClosed
		}
		t.Stop()
	}
	n, err := c.f.Read(p)
	c.last = time.Now()
	return n, c.mapErr(err)
}

func (c *lazyConn) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	return n, c.mapErr(err)
}

// mapErr turns a socket timeout into the net.Error nats.go expects, and a
// read after Close into net.ErrClosed.
func (c *lazyConn) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EAGAIN):
		return os.ErrDeadlineExceeded
	case errors.Is(err, os.ErrClosed):
		return net.ErrClosed
	}
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	return err
}

// Close shuts the socket down first: a thread blocked in read(2) would not
// notice a mere close.
func (c *lazyConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
		err = c.f.Close()
	})
	return err
}

func (c *lazyConn) LocalAddr() net.Addr  { return c.local }
func (c *lazyConn) RemoteAddr() net.Addr { return c.remote }

func (c *lazyConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the socket's receive timeout to what is left until
// t: a blocking socket has no deadlines, only timeouts.
func (c *lazyConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = !t.IsZero()
	c.mu.Unlock()
	return c.timeout(unix.SO_RCVTIMEO, t)
}

func (c *lazyConn) SetWriteDeadline(t time.Time) error { return c.timeout(unix.SO_SNDTIMEO, t) }

func (c *lazyConn) timeout(opt int, t time.Time) error {
	var tv unix.Timeval
	if !t.IsZero() {
		d := max(time.Until(t), time.Microsecond) // zero would mean none
		tv = unix.NsecToTimeval(d.Nanoseconds())
	}
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, opt, &tv); err != nil {
		return fmt.Errorf("set bus socket timeout: %w", err)
	}
	return nil
}
