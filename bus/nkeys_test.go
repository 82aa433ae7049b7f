package bus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"
)

// mustDirServer starts a bus whose logins are a fresh bus directory's, as
// a dashboard without --nats-users has, and returns it with the directory.
func mustDirServer(t *testing.T) (*bus.Server, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bus")
	users, err := bus.EnsureDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := startWithUsers(t, users)
	return s, dir
}

// refusals collects the permission errors the server sends a connection.
type refusals chan error

func (r refusals) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	select {
	case r <- err:
	default:
	}
}

// wait returns the next refusal, failing the test if none comes in time.
func (r refusals) wait(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-r:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("%s: got %v, want a permissions violation", what, err)
		}
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the bus did not refuse it", what)
		return nil
	}
}

// connectLogin logs in with a bus directory's seed file, as lifeline's
// clients do.
func connectLogin(t *testing.T, s *bus.Server, seed string) (*nats.Conn, refusals) {
	t.Helper()
	login, err := bus.ResolveLogin(s.ClientURL(), seed, "")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := login.Options()
	if err != nil {
		t.Fatal(err)
	}
	r := make(refusals, 8)
	nc, err := nats.Connect(s.ClientURL(), append(opts, nats.ErrorHandler(r.handler))...)
	if err != nil {
		t.Fatalf("connect with %s: %v", seed, err)
	}
	t.Cleanup(nc.Close)
	return nc, r
}

func TestEnsureDirMakesPrivateSeedsOnceAndReusesThem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	first, err := bus.EnsureDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("bus dir mode %v, err %v; want 0700", st.Mode().Perm(), err)
	}
	for _, name := range []string{"operator.nk", "viewer.nk", "agent.nk", "bot.nk", bus.RouteSecretFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, err %v; want 0600", name, st.Mode().Perm(), err)
		}
	}
	// The stock tools read the file: nats.go's (and so the nats CLI's)
	// decorated-seed parser finds the seed below the comment lines.
	b, _ := os.ReadFile(filepath.Join(dir, "operator.nk"))
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		t.Fatalf("seed file unreadable by nkeys: %v", err)
	}
	pub, _ := kp.PublicKey()
	again, err := bus.EnsureDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(first) || again[0].NKey != first[0].NKey || first[0].NKey != pub {
		t.Fatalf("second start made new logins: %+v then %+v", first, again)
	}
	secret, err := bus.RouteSecret(dir)
	if err != nil || len(secret) < 32 {
		t.Fatalf("route secret %q, err %v", secret, err)
	}
}

func TestEnsureDirRefusesFilesOthersCanReadOrRedirect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	if _, err := bus.EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	op := filepath.Join(dir, "operator.nk")
	before, _ := os.ReadFile(op)
	os.Chmod(op, 0o644)
	if _, err := bus.EnsureDir(dir); !errors.Is(err, bus.ErrNotPrivate) {
		t.Fatalf("a world-readable seed: got %v, want ErrNotPrivate", err)
	}
	os.Chmod(op, 0o600)
	// A symlink planted in place of a seed file is never followed.
	elsewhere := filepath.Join(t.TempDir(), "planted")
	os.WriteFile(elsewhere, before, 0o600)
	os.Remove(filepath.Join(dir, "viewer.nk"))
	if err := os.Symlink(elsewhere, filepath.Join(dir, "viewer.nk")); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureDir(dir); err == nil {
		t.Fatal("a symlinked seed file was followed")
	}
	os.Chmod(dir, 0o755)
	if _, err := bus.EnsureDir(dir); !errors.Is(err, bus.ErrNotPrivate) {
		t.Fatalf("a world-readable bus dir: got %v, want ErrNotPrivate", err)
	}
	if got, _ := os.ReadFile(elsewhere); string(got) != string(before) {
		t.Fatal("the planted file changed")
	}
}

func TestBusTakesNoAnonymousClient(t *testing.T) {
	s, _ := mustDirServer(t)
	if nc, err := nats.Connect(s.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted on loopback")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous: got %v, want an authorization violation", err)
	}
	// A seed the bus does not know is refused too.
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	stranger := filepath.Join(t.TempDir(), "stranger.nk")
	os.WriteFile(stranger, append(seed, '\n'), 0o600)
	opt, err := nats.NkeyOptionFromSeed(stranger)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(s.ClientURL(), opt); err == nil {
		nc.Close()
		t.Fatal("an unknown nkey was accepted")
	}
}

func TestResolveLoginFindsTheDashboardsSeedsOnLoopbackOnly(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if _, err := bus.EnsureDir(bus.DefaultDir); err != nil {
		t.Fatal(err)
	}
	l, err := bus.ResolveLogin("nats://127.0.0.1:4222", "", bus.LoginOperator)
	if err != nil || l.NkeyFile != filepath.Join(bus.DefaultDir, "operator.nk") || l.Name != bus.LoginOperator {
		t.Fatalf("loopback: %+v, %v", l, err)
	}
	if l, _ := bus.ResolveLogin("nats://dash.example:4222", "", bus.LoginOperator); l.NkeyFile != "" {
		t.Fatalf("a remote bus got the local seed: %+v", l)
	}
	if l, _ := bus.ResolveLogin("nats://alice:pw-of-alice@127.0.0.1:4222", "", bus.LoginOperator); l.NkeyFile != "" || l.Name != "alice" {
		t.Fatalf("a URL user: %+v", l)
	}
}

// TestNoLoginReadsAnothersReplies: every login receives replies only in its
// own inbox, so a viewer cannot read what the agent tells an operator.
func TestNoLoginReadsAnothersReplies(t *testing.T) {
	s, dir := mustDirServer(t)
	agent, _ := connectLogin(t, s, bus.SeedFile(dir, bus.LoginAgent))
	if _, err := agent.Subscribe(bus.AgentSubject("bot", bus.OpStatus), func(m *nats.Msg) { m.Respond([]byte(`{"secret":1}`)) }); err != nil {
		t.Fatal(err)
	}
	agent.Flush()
	viewer, refused := connectLogin(t, s, bus.SeedFile(dir, bus.LoginViewer))
	for _, spy := range []string{"_INBOX.>", bus.InboxPrefix(bus.LoginOperator) + ".>", ">"} {
		viewer.Subscribe(spy, func(m *nats.Msg) { t.Errorf("viewer read %s: %s", m.Subject, m.Data) })
		viewer.Flush()
		refused.wait(t, "viewer subscribing to "+spy)
	}
	op, _ := connectLogin(t, s, bus.SeedFile(dir, bus.LoginOperator))
	if _, err := op.Request(bus.AgentSubject("bot", bus.OpStatus), nil, 5*time.Second); err != nil {
		t.Fatalf("operator's own request: %v", err)
	}
	// The viewer may still ask for itself.
	if _, err := viewer.Request(bus.AgentSubject("bot", bus.OpStatus), nil, 5*time.Second); err != nil {
		t.Fatalf("viewer's own request: %v", err)
	}
}

// TestBotLoginCannotPoseAsAnAgent: a bot login may answer discovery only for
// the bot service, and may not answer an agent's subjects, so it can neither
// scare a starting agent away with a forged $SRV.STATS reply nor list
// made-up bots.
func TestBotLoginCannotPoseAsAnAgent(t *testing.T) {
	s, dir := mustDirServer(t)
	botc, refused := connectLogin(t, s, bus.SeedFile(dir, bus.LoginBot))
	for _, subj := range []string{"$SRV.STATS.lifeline-agent", "$SRV.INFO.lifeline-agent", "$SRV.INFO.lifeline-agent.x", bus.AgentSubject("bot", bus.OpStatus)} {
		botc.Subscribe(subj, func(m *nats.Msg) { m.Respond([]byte(`{"forged":true}`)) })
		botc.Flush()
		refused.wait(t, "bot login answering "+subj)
	}
	// A real bot service still registers and is discovered.
	svc, err := micro.AddService(botc, micro.Config{Name: bus.BotService, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	op, _ := connectLogin(t, s, bus.SeedFile(dir, bus.LoginOperator))
	subj, _ := micro.ControlSubject(micro.InfoVerb, bus.BotService, "")
	if _, err := op.Request(subj, nil, 5*time.Second); err != nil {
		t.Fatalf("discovering the bot service: %v", err)
	}
	// An agent asking for rival agents hears nothing from the bot login.
	agent, _ := connectLogin(t, s, bus.SeedFile(dir, bus.LoginAgent))
	stats, _ := micro.ControlSubject(micro.StatsVerb, bus.AgentService, "")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if m, err := agent.RequestWithContext(ctx, stats, nil); err == nil {
		t.Fatalf("an agent got a $SRV.STATS answer from %q", m.Data)
	}
}

func TestViewerAndBotCannotCommand(t *testing.T) {
	s, dir := mustDirServer(t)
	agent, _ := connectLogin(t, s, bus.SeedFile(dir, bus.LoginAgent))
	commanded := make(chan string, 4)
	agent.Subscribe("lifeline.agent.bot.*", func(m *nats.Msg) {
		if !strings.HasSuffix(m.Subject, ".status") {
			commanded <- m.Subject
		}
		m.Respond([]byte(`{"ok":true}`))
	})
	agent.Flush()
	for _, who := range []string{bus.LoginViewer, bus.LoginBot, bus.LoginAgent} {
		nc, refused := connectLogin(t, s, bus.SeedFile(dir, who))
		nc.PublishRequest(bus.AgentSubject("bot", bus.OpRestart), nc.NewRespInbox(), nil)
		nc.Flush()
		refused.wait(t, who+" restarting a bot")
	}
	op, _ := connectLogin(t, s, bus.SeedFile(dir, bus.LoginOperator))
	if _, err := op.Request(bus.AgentSubject("bot", bus.OpRestart), nil, 5*time.Second); err != nil {
		t.Fatalf("operator restart: %v", err)
	}
	if got := <-commanded; got != bus.AgentSubject("bot", bus.OpRestart) {
		t.Fatalf("got %s", got)
	}
	select {
	case got := <-commanded:
		t.Fatalf("a second command reached the agent: %s", got)
	default:
	}
}

func TestUsersFileTakesNkeys(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	p := filepath.Join(t.TempDir(), "users")
	os.WriteFile(p, []byte("viewer wall "+pub+"\nagent a1 another-long-secret bot\n"), 0o600)
	users, err := bus.ReadUsers(p)
	if err != nil || len(users) != 2 || users[0].NKey != pub || users[0].Password != "" {
		t.Fatalf("users %+v, err %v", users, err)
	}
	s := startWithUsers(t, users)
	seed, _ := kp.Seed()
	f := filepath.Join(t.TempDir(), "wall.nk")
	os.WriteFile(f, append([]byte("# lifeline login: wall\n"), append(seed, '\n')...), 0o600)
	nc, _ := connectLogin(t, s, f)
	// A viewer's request comes back to its named inbox.
	agent := connectAs(t, s, "a1", "another-long-secret")
	agent.Subscribe(bus.AgentSubject("bot", bus.OpStatus), func(m *nats.Msg) { m.Respond([]byte("{}")) })
	agent.Flush()
	if _, err := nc.Request(bus.AgentSubject("bot", bus.OpStatus), nil, 5*time.Second); err != nil {
		t.Fatalf("nkey viewer's request: %v", err)
	}
	for _, bad := range []string{"admin root a-long-enough-password\n", "viewer dup " + pub + "\nviewer dup " + pub + "\n"} {
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := bus.ReadUsers(p); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestRogueRouteCannotJoin: a server that does not present the cluster's
// route secret is refused on the cluster port, so its clients never reach
// the bots; one that presents it joins.
func TestRogueRouteCannotJoin(t *testing.T) {
	users := []bus.User{{Name: "op", Password: "a-long-enough-password", Role: bus.RoleOperator},
		{Name: "ag", Password: "a-long-enough-password", Role: bus.RoleAgent, Bot: "bot"}}
	const secret = "0123456789abcdef0123456789abcdef"
	a, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: "a", ClusterListen: "127.0.0.1:0",
		ClusterName: "t", RouteSecret: secret, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	agent := connectAs(t, a, "ag", "a-long-enough-password")
	restarted := make(chan struct{}, 4)
	agent.Subscribe(bus.AgentSubject("bot", bus.OpRestart), func(m *nats.Msg) { restarted <- struct{}{}; m.Respond([]byte("{}")) })
	agent.Flush()

	join := func(name, secret string) *bus.Server {
		s, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: name, ClusterListen: "127.0.0.1:0",
			ClusterName: "t", RouteSecret: secret, Routes: []string{a.ClusterURL()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	// The rogue takes anyone (no users) and knows no secret.
	rogue := join("rogue", "")
	nc, err := nats.Connect(rogue.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	friend := join("friend", secret)
	deadline := time.Now().Add(10 * time.Second)
	for a.NumRoutes() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the server with the secret never joined")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// By now the rogue has dialled too (it started first) and been refused:
	// only the friend's route exists, and the rogue's client reaches no agent.
	rz, err := a.Routez(&server.RoutezOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rz.Routes {
		if r.RemoteName != "friend" {
			t.Fatalf("a route to %q, want only the friend's", r.RemoteName)
		}
	}
	if rogue.NumRoutes() != 0 {
		t.Fatal("the rogue holds a route")
	}
	if _, err := nc.Request(bus.AgentSubject("bot", bus.OpRestart), nil, 500*time.Millisecond); err == nil {
		t.Fatal("the rogue's client reached the agent")
	}
	select {
	case <-restarted:
		t.Fatal("the agent got a restart from the rogue")
	default:
	}
	_ = friend
}
