package dashboard

import (
	"context"
	"errors"
	"net"
	"time"
)

// RemoteListener opens a second way in to the dashboard besides HTTPAddr,
// such as an ngrok tunnel for remote access. The dashboard serves the same
// page and API on it, behind the same tokens.
type RemoteListener interface {
	// Listen opens the listener and returns it with the public URL people
	// reach it at (printed with the local one). Closing the listener must
	// release everything Listen took: the dashboard closes it when it stops,
	// or when Open fails after it.
	Listen(ctx context.Context) (ln net.Listener, publicURL string, err error)
}

// ErrRemote is the error Open returns, wrapped, when Remote cannot be
// opened.
var ErrRemote = errors.New("open remote access")

// remoteOpenTimeout bounds Remote.Listen when Open's context has no
// deadline: a tunnel that cannot be set up in that time will not be.
const remoteOpenTimeout = 30 * time.Second

// openRemote opens d.cfg.Remote.
func (d *Dashboard) openRemote(ctx context.Context) (net.Listener, string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, remoteOpenTimeout)
		defer cancel()
	}
	ln, u, err := d.cfg.Remote.Listen(ctx)
	if err != nil {
		return nil, "", err
	}
	if ln == nil {
		return nil, "", errors.New("no listener")
	}
	return ln, u, nil
}
