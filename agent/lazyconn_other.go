//go:build !unix

package agent

import "net"

// lazyEvery is how late a heartbeat may be read: never, here.
const lazyEvery = 0

// lazyDialer is unix only (see lazyconn_unix.go): elsewhere heartbeats come
// over the agent's one bus connection, as each arrives.
type lazyDialer struct{}

func newLazyDialer() *lazyDialer { return nil }

func (*lazyDialer) Dial(network, address string) (net.Conn, error) {
	return net.Dial(network, address)
}

func (*lazyDialer) hurry() {}

func (*lazyDialer) calm() {}
