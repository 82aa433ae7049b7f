package dashboard

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestSameCause: a failure to reach the bus that repeats on every
// reconnect, as a new error value each time, counts as one cause; a
// different failure does not.
func TestSameCause(t *testing.T) {
	dial := func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = net.Dial("tcp", addr)
		if err == nil {
			t.Skip("a closed port accepted a connection")
		}
		return err
	}
	unknown := func() error { return fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}) }
	for _, tc := range []struct {
		name string
		a, b error
		same bool
	}{
		{"refused twice", dial(), dial(), true},
		{"one sentinel, wrapped anew", fmt.Errorf("a: %w", nats.ErrAuthorization), fmt.Errorf("b: %w", nats.ErrAuthorization), true},
		{"unknown CA twice", unknown(), unknown(), true},
		{"two sentinels", nats.ErrAuthorization, nats.ErrNoServers, false},
		{"refused, then refused login", dial(), nats.ErrAuthorization, false},
		{"unknown CA, then refused", unknown(), dial(), false},
		{"two new errors", errors.New("x"), errors.New("x"), false},
	} {
		if got := sameCause(tc.a, tc.b); got != tc.same {
			t.Errorf("%s: sameCause(%v, %v) = %v, want %v", tc.name, tc.a, tc.b, got, tc.same)
		}
	}
}
