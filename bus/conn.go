package bus

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ReconnectWait is how long a client waits between reconnect attempts. It is
// short because the bus is usually on loopback, and a bot's heartbeats must
// resume well within the agent's hang timeout once the bus is back.
const ReconnectWait = 100 * time.Millisecond

// URLs returns the bus URL list from a flag value, then $NATS_URL, then DefaultURL.
func URLs(flagValue string) string {
	if v := strings.TrimSpace(flagValue); v != "" {
		return v
	}
	if v := strings.TrimSpace(os.Getenv("NATS_URL")); v != "" {
		return v
	}
	return DefaultURL
}

// Redact hides the passwords in a comma-separated URL list, for logs and
// messages: "nats://alice:secret@host" becomes "nats://alice:xxxxx@host".
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// Connect opens a named client connection to the comma-separated urls. It
// reconnects forever and, with retry set, also starts when no server is up
// yet (roles that must keep working without the bus); without it, an
// unreachable bus is an error at once (command-line clients).
func Connect(urls, name string, retry bool, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
		nats.ReconnectJitter(50*time.Millisecond, 50*time.Millisecond),
		nats.Timeout(2 * time.Second),
		// A server cut off by the network is noticed after about three
		// seconds, well inside the agent's hang timeout, so bots and agents
		// fail over before a missing heartbeat could be judged.
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(3),
	}
	if retry {
		base = append(base, nats.RetryOnFailedConnect(true))
	}
	nc, err := nats.Connect(urls, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to bus at %s: %w", Redact(urls), loginRefused(err))
	}
	return nc, nil
}
