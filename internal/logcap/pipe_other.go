//go:build !unix

package logcap

import (
	"errors"
	"os"
	"time"
)

func newPipe() (r, w *os.File, err error) { return os.Pipe() }

func (s *stream) prepare() error { return nil }

// waitRead reads the pipe, waiting for data; errStopped once Close was
// called.
func (s *stream) waitRead(buf []byte) (int, error) {
	n, err := s.r.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = errStopped
	}
	return n, err
}

// wake ends a wait in Read; Close calls it after closing stop.
func (s *stream) wake() { _ = s.r.SetReadDeadline(time.Now()) }

// drain cannot read without waiting here; Close then keeps only what the
// reader already had.
func (s *stream) drain([]byte) int { return 0 }
