package joinlistener

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// accept dials ln's address and returns the connection the joined listener
// j accepts for it.
func accept(t *testing.T, j net.Listener, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	got := make(chan net.Conn, 1)
	go func() {
		s, err := j.Accept()
		if err != nil {
			t.Error(err)
		}
		got <- s
	}()
	select {
	case s := <-got:
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// Connections of both listeners arrive, the remote ones marked; a dead
// remote listener leaves the local one serving; Close closes both.
func TestJoinServesBothAndOutlivesTheRemote(t *testing.T) {
	local, remote := listen(t), listen(t)
	j := Join(local, remote, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if j.Addr().String() != local.Addr().String() {
		t.Errorf("address %v, want the local %v", j.Addr(), local.Addr())
	}
	if c := accept(t, j, local.Addr().String()); c == nil || FromRemote(c) {
		t.Errorf("local connection %v taken for remote", c)
	}
	if c := accept(t, j, remote.Addr().String()); c == nil || !FromRemote(c) {
		t.Errorf("remote connection %v not marked", c)
	}
	remote.Close() // the tunnel dies
	if c := accept(t, j, local.Addr().String()); c == nil || FromRemote(c) {
		t.Errorf("local connection after the remote died: %v", c)
	}
	j.Close()
	if _, err := j.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	if _, err := net.Dial("tcp", local.Addr().String()); err == nil {
		t.Error("the local listener still accepts after Close")
	}
}
