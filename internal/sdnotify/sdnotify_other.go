//go:build !linux

package sdnotify

// Socket is a notify socket; off Linux none can be opened.
type Socket struct{}

// Listen returns ErrUnsupported: only Linux attaches the sender's
// credentials to unix datagrams (SO_PASSCRED), and without them messages from
// other processes could not be told apart. Windows has no unix datagram
// sockets at all.
func Listen(string) (*Socket, error) { return nil, ErrUnsupported }

// ListenFor returns ErrUnsupported, as Listen.
func ListenFor(string, string) (*Socket, error) { return nil, ErrUnsupported }

// Addr returns "".
func (*Socket) Addr() string { return "" }

// Messages returns nil, a channel that never delivers.
func (*Socket) Messages() <-chan Message { return nil }

// Stats returns zero counters.
func (*Socket) Stats() Stats { return Stats{} }

// Close does nothing.
func (*Socket) Close() error { return nil }

// Descendant returns ErrUnsupported.
func Descendant(int, int) (bool, error) { return false, ErrUnsupported }
