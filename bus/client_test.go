package bus_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

// refusalBus starts a bus with an operator, a viewer and an agent password
// login, and an agent that answers status and restart for bot "bot",
// counting the requests that reach it.
func refusalBus(t *testing.T) (*bus.Server, *atomic.Int32) {
	t.Helper()
	s, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: "refusal", Users: []bus.User{
		{Name: "op", Password: "operator-secret", Role: bus.RoleOperator},
		{Name: "v1", Password: "viewer-secret-1", Role: bus.RoleViewer},
		{Name: "ag", Password: "agent-secret-12", Role: bus.RoleAgent, Bot: "*"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	agent := dialAs(t, s, "ag", "agent-secret-12", true)
	var reached atomic.Int32
	for op, reply := range map[string]any{
		bus.OpStatus:  bus.Status{Name: "bot", State: bus.StateRunning, PID: 42},
		bus.OpRestart: bus.Reply{OK: true, OldPID: 42, NewPID: 43},
	} {
		if _, err := agent.Subscribe(bus.AgentSubject("bot", op), func(m *nats.Msg) {
			reached.Add(1)
			m.Respond(bus.Encode(reply))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	return s, &reached
}

// dialAs connects with a password login, receiving replies in the login's
// own inbox when ownInbox is set (as Login.Options arranges). nats.go's
// default error handler would print to stderr; the test's stays silent.
func dialAs(t *testing.T, s *bus.Server, user, pass string, ownInbox bool) *nats.Conn {
	t.Helper()
	opts := []nats.Option{nats.UserInfo(user, pass), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}
	if ownInbox {
		opts = append(opts, nats.CustomInboxPrefix(bus.InboxPrefix(user)))
	}
	nc, err := bus.Connect(s.ClientURL(), "test "+user, false, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestAskRefusedAtOnce(t *testing.T) {
	s, reached := refusalBus(t)
	viewer := dialAs(t, s, "v1", "viewer-secret-1", true)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()

	for range 2 { // a second refusal on the same connection is noticed too
		start := time.Now()
		_, err := bus.Ask(ctx, viewer, "bot", bus.OpRestart, bus.Request{RequestedBy: "test"})
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("refusal took %v: it waited for the deadline", took)
		}
		var refused *bus.RefusedError
		if !errors.As(err, &refused) || !errors.Is(err, bus.ErrRefused) {
			t.Fatalf("viewer restart: got %v, want a *bus.RefusedError", err)
		}
		if refused.Login != "v1" || refused.Op != bus.OpRestart || refused.Subject != bus.AgentSubject("bot", bus.OpRestart) || refused.Inbox {
			t.Errorf("refusal %+v", *refused)
		}
		if want := "the bus refused: login v1 may not restart bots"; err.Error() != want {
			t.Errorf("message %q, want %q", err.Error(), want)
		}
	}

	// What the viewer may do still works on the same connection, and an
	// earlier refusal is not taken for a new one.
	st, err := bus.AskStatus(ctx, viewer, "bot")
	if err != nil || st.PID != 42 {
		t.Fatalf("viewer status after a refusal: %+v, %v", st, err)
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("%d requests reached the agent, want 1 (the status)", n)
	}

	// The operator may restart.
	r, err := bus.Ask(ctx, dialAs(t, s, "op", "operator-secret", true), "bot", bus.OpRestart, bus.Request{})
	if err != nil || !r.OK || r.NewPID != 43 {
		t.Fatalf("operator restart: %+v, %v", r, err)
	}
}

func TestAskRefusedInbox(t *testing.T) {
	s, _ := refusalBus(t)
	// Replies to _INBOX.<random> are not the viewer's to read.
	viewer := dialAs(t, s, "v1", "viewer-secret-1", false)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	start := time.Now()
	_, err := bus.AskStatus(ctx, viewer, "bot")
	var refused *bus.RefusedError
	if !errors.As(err, &refused) || !refused.Inbox {
		t.Fatalf("status with a foreign inbox: got %v, want a refused inbox", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("refusal took %v", took)
	}
}

func TestConnectLoginRefused(t *testing.T) {
	withPasswords, _ := refusalBus(t)
	// A bus with the nkey logins of a bus directory, and the seeds of
	// another dashboard's directory: keys this bus does not know.
	users, err := bus.EnsureDir(filepath.Join(t.TempDir(), "bus"))
	if err != nil {
		t.Fatalf("bus directory: %v", err)
	}
	withNkeys, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: "nkeys", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(withNkeys.Close)
	stranger := filepath.Join(t.TempDir(), "bus")
	if _, err := bus.EnsureDir(stranger); err != nil {
		t.Fatal(err)
	}
	nkey, err := nats.NkeyOptionFromSeed(bus.SeedFile(stranger, bus.LoginOperator))
	if err != nil {
		t.Fatal(err)
	}
	none := func(*nats.Options) error { return nil }
	for _, tc := range []struct {
		name  string
		s     *bus.Server
		login nats.Option
	}{
		{"wrong password", withPasswords, nats.UserInfo("v1", "not-the-password")},
		{"unknown user", withPasswords, nats.UserInfo("nobody", "viewer-secret-1")},
		{"nkey to a password bus", withPasswords, nkey},
		{"no login", withPasswords, none},
		{"unknown nkey", withNkeys, nkey},
		{"password to an nkey bus", withNkeys, nats.UserInfo("operator", "operator-secret")},
		{"no login to an nkey bus", withNkeys, none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			nc, err := bus.Connect(tc.s.ClientURL(), "test", false, tc.login, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, bus.ErrLoginRefused) {
				t.Errorf("got %v, want bus.ErrLoginRefused", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("refusal took %v", took)
			}
		})
	}
}
