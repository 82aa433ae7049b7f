//go:build unix

package logcap

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A stream's read end stays out of the runtime's poller, but for the moments
// it waits for a bot with nothing to say. Linux wakes every poller of a pipe
// at each write into it, so a pipe kept in the poller cost the bot a wake-up
// of one of our threads per write, even while the reader napped: a Python
// bot printing as fast as it could ran at 0.6 of its /dev/null speed, and at
// its full speed with the pipe out of the poller (the reader napping, the
// bot writing into a pipe nobody waits on). So the read end is non-blocking
// and read directly; when it is empty, a duplicate descriptor waits in the
// poller (no thread held, however many bots) and is closed, which takes it
// out of the poller, once data came.

// newPipe makes a pipe whose ends the runtime does not poll: the write end
// is the child's, blocking as a stdout should be.
func newPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := pipe2(p[:]); err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	// Blocking descriptors make plain files, not polled ones.
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}

// prepare makes the read end non-blocking (its own open file only, never
// the child's end) for direct reads.
func (s *stream) prepare() error {
	rc, err := s.r.SyscallConn()
	if err != nil {
		return fmt.Errorf("read end: %w", err)
	}
	var nbErr error
	if err := rc.Control(func(fd uintptr) {
		s.fd = int(fd)
		nbErr = unix.SetNonblock(s.fd, true)
	}); err != nil {
		return fmt.Errorf("read end: %w", err)
	}
	if nbErr != nil {
		return fmt.Errorf("make read end non-blocking: %w", nbErr)
	}
	return nil
}

// waitRead reads what the pipe holds, waiting in the poller only when it
// holds nothing. It returns errStopped once Close was called.
func (s *stream) waitRead(buf []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errStopped
	default:
	}
	if n, err := s.readNow(buf); n > 0 || !errors.Is(err, syscall.EAGAIN) {
		return n, err
	}
	pf, err := s.poll()
	if err != nil {
		return 0, err
	}
	defer s.unpoll(pf)
	n, err := pf.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = errStopped
	}
	return n, err
}

// readNow reads once without waiting: EAGAIN when the pipe is empty, io.EOF
// when no writer is left.
func (s *stream) readNow(buf []byte) (int, error) {
	for {
		n, err := unix.Read(s.fd, buf)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// poll returns a polled duplicate of the read end, for one wait.
func (s *stream) poll() (*os.File, error) {
	nfd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup %s pipe: %w", s.name, err)
	}
	pf := os.NewFile(uintptr(nfd), s.name) // non-blocking: polled
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stop:
		pf.Close()
		return nil, errStopped
	default:
	}
	s.idle = pf
	return pf, nil
}

func (s *stream) unpoll(pf *os.File) {
	s.mu.Lock()
	s.idle = nil
	s.mu.Unlock()
	pf.Close()
}

// wake ends a wait in the poller; Close calls it after closing stop.
func (s *stream) wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle != nil {
		_ = s.idle.SetReadDeadline(time.Now())
	}
}

// drain reads once without waiting; 0 when the pipe is empty.
func (s *stream) drain(buf []byte) int {
	n, _ := s.readNow(buf)
	return n
}
