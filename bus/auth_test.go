package bus_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

func startWithUsers(t *testing.T, users []bus.User) *bus.Server {
	t.Helper()
	s, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: "auth", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func connectAs(t *testing.T, s *bus.Server, user, pass string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, pass), nats.CustomInboxPrefix(bus.InboxPrefix(user)),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestRolesAreEnforcedByTheBus(t *testing.T) {
	const pw = "a-long-enough-password"
	s := startWithUsers(t, []bus.User{
		{Name: "admin", Password: pw, Role: bus.RoleAdmin},
		{Name: "op", Password: pw, Role: bus.RoleOperator},
		{Name: "view", Password: pw, Role: bus.RoleViewer},
		{Name: "agent-bot", Password: pw, Role: bus.RoleAgent, Bot: "bot"},
		{Name: "bot-bot", Password: pw, Role: bus.RoleBot, Bot: "bot"},
	})
	if _, err := nats.Connect(s.ClientURL()); err == nil {
		t.Fatal("anonymous connection accepted")
	}
	agent := connectAs(t, s, "agent-bot", pw)
	for _, op := range []string{bus.OpStatus, bus.OpRestart} {
		if _, err := agent.Subscribe(bus.AgentSubject("bot", op), func(m *nats.Msg) { m.Respond([]byte(`{"ok":true}`)) }); err != nil {
			t.Fatal(err)
		}
	}
	agent.Flush()
	ask := func(nc *nats.Conn, op string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := nc.RequestWithContext(ctx, bus.AgentSubject("bot", op), nil)
		return err
	}
	if err := ask(connectAs(t, s, "op", pw), bus.OpRestart); err != nil {
		t.Errorf("operator restart: %v", err)
	}
	viewer := connectAs(t, s, "view", pw)
	if err := ask(viewer, bus.OpStatus); err != nil {
		t.Errorf("viewer status: %v", err)
	}
	if err := ask(viewer, bus.OpRestart); err == nil {
		t.Error("viewer could restart")
	}
	// A bot account may heartbeat only as its own bot.
	botc := connectAs(t, s, "bot-bot", pw)
	watch := connectAs(t, s, "admin", pw)
	got := make(chan string, 4)
	watch.Subscribe("lifeline.bot.*.heartbeat", func(m *nats.Msg) { got <- m.Subject })
	watch.Flush()
	botc.Publish(bus.HeartbeatSubject("other"), []byte("{}"))
	botc.Publish(bus.HeartbeatSubject("bot"), []byte("{}"))
	botc.Flush()
	select {
	case subj := <-got:
		if subj != bus.HeartbeatSubject("bot") {
			t.Fatalf("bot account published on %s", subj)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("own heartbeat not delivered")
	}
	// And an agent account cannot command another bot.
	if err := ask(agent, bus.OpRestart); err == nil {
		t.Error("agent account could send restart requests")
	}
}

func TestBeyondLoopbackNeedsUsers(t *testing.T) {
	_, err := bus.StartServer(bus.ServerConfig{Listen: "0.0.0.0:0"})
	if !errors.Is(err, bus.ErrNoCredentials) {
		t.Fatalf("got %v, want ErrNoCredentials", err)
	}
	users := []bus.User{{Name: "op", Password: "a-long-enough-password", Role: bus.RoleOperator}}
	_, err = bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", ClusterListen: "0.0.0.0:0", Users: users})
	if !errors.Is(err, bus.ErrNoRouteCredentials) {
		t.Fatalf("cluster: got %v, want ErrNoRouteCredentials", err)
	}
}

func TestReadUsers(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "users")
	os.WriteFile(good, []byte("# role user password [bot]\noperator alice correct-horse-battery\n\nagent a1 another-long-secret bot\n"), 0o600)
	users, err := bus.ReadUsers(good)
	if err != nil || len(users) != 2 || users[1].Bot != "bot" || users[0].Role != bus.RoleOperator {
		t.Fatalf("users %+v, err %v", users, err)
	}
	for name, content := range map[string]string{
		"short":   "viewer v short\n",
		"role":    "wizard w a-long-enough-password\n",
		"nobot":   "agent a a-long-enough-password\n",
		"badbot":  "bot b a-long-enough-password not.valid\n",
		"fields":  "operator\n",
		"toomany": "operator a b c d e\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := bus.ReadUsers(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClusteredServersShareSubjects(t *testing.T) {
	a, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: "a", ClusterListen: "127.0.0.1:0", ClusterName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	b, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: "b", ClusterListen: "127.0.0.1:0", ClusterName: "t", Routes: []string{a.ClusterURL()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if u, _ := url.Parse(a.ClusterURL()); u.Port() == "0" {
		t.Fatalf("cluster url %s", a.ClusterURL())
	}
	na, _ := nats.Connect(a.ClientURL())
	t.Cleanup(na.Close)
	nb, _ := nats.Connect(b.ClientURL())
	t.Cleanup(nb.Close)
	na.Subscribe("lifeline.agent.bot.status", func(m *nats.Msg) { m.Respond([]byte("pong")) })
	na.Flush()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := nb.Request("lifeline.agent.bot.status", nil, 200*time.Millisecond)
		if err == nil && string(m.Data) == "pong" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("request across the route: %v", err)
		}
	}
}

// TestOnlyDashboardsWriteHistory: the history stream's subjects are open to
// the dashboards' admin login only; every other role's publish is refused
// by the bus.
func TestOnlyDashboardsWriteHistory(t *testing.T) {
	const pw = "a-long-enough-password"
	s := startWithUsers(t, []bus.User{
		{Name: "admin", Password: pw, Role: bus.RoleAdmin},
		{Name: "op", Password: pw, Role: bus.RoleOperator},
		{Name: "view", Password: pw, Role: bus.RoleViewer},
		{Name: "agent-bot", Password: pw, Role: bus.RoleAgent, Bot: "bot"},
		{Name: "bot-bot", Password: pw, Role: bus.RoleBot, Bot: "bot"},
	})
	admin := connectAs(t, s, "admin", pw)
	got := make(chan string, 8)
	if _, err := admin.Subscribe(bus.HistoryWildcard, func(m *nats.Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	admin.Flush()
	for _, user := range []string{"op", "view", "agent-bot", "bot-bot"} {
		nc := connectAs(t, s, user, pw)
		nc.Publish(bus.HistorySubject("bot"), []byte(user))
		// The server has handled the publish once the flush returns, so a
		// delivered copy would arrive before the admin's own below.
		if err := nc.Flush(); err != nil {
			t.Fatalf("%s: flush: %v", user, err)
		}
	}
	admin.Publish(bus.HistorySubject("bot"), []byte("admin"))
	admin.Flush()
	select {
	case who := <-got:
		if who != "admin" {
			t.Fatalf("%s could write history", who)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the admin's history write was not delivered")
	}
}
