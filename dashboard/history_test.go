package dashboard

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/lifeline-dev/lifeline/dashboard/history"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitLong is waitFor for what a JetStream cluster does at its own pace.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, what, 45*time.Second, cond)
}

// oldStream makes, in a fresh data dir, the stream cfg that an older
// dashboard left there, holding events published on subject, and returns
// the data dir for a new dashboard to start on.
func oldStream(t *testing.T, cfg jetstream.StreamConfig, subject string, events ...[]byte) (dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	old, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: "old", StoreDir: dataDir + "/jetstream"})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(old.ClientURL())
	if err != nil {
		old.Close()
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	_, err = js.CreateStream(context.Background(), cfg)
	for _, data := range events {
		if err == nil {
			_, err = js.Publish(context.Background(), subject, data)
		}
	}
	nc.Close()
	old.Close()
	if err != nil {
		t.Fatalf("old stream: %v", err)
	}
	return dataDir
}

func publishEvent(t *testing.T, nc *nats.Conn, ev bus.Event) {
	t.Helper()
	if err := nc.Publish(bus.EventsSubject(ev.Name), bus.Encode(ev)); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
}

func hasEvent(t *testing.T, td *testDashboard, reason string) bool {
	r := call(t, "GET", td.base+"/api/events", bearer(td.AccessToken()), nil)
	return r.code == 200 && strings.Contains(string(r.body), reason)
}

func TestHistorySurvivesADashboardRestart(t *testing.T) {
	first := newTestDashboard(t)
	stop := mustRun(t, first)
	nc := connect(t, first)
	js := waitForStream(t, connectAs(t, first, bus.LoginOperator))
	publishEvent(t, nc, bus.Event{Time: time.Now().UTC(), Name: "bot", Type: bus.EventCrashed, PID: 42, Reason: "before-restart"})
	waitFor(t, "event seen live", func() bool { return hasEvent(t, first, "before-restart") })
	// Stored before the stop: a dashboard that stops gives up what it has
	// not stored yet (the others received it too), and a loaded machine may
	// stop it first.
	waitStored(t, js, []string{"before-restart"})
	nc.Close()
	stop()

	second := newTestDashboard(t)
	second.DataDir = first.DataDir
	mustRun(t, second)
	waitFor(t, "event from history", func() bool { return hasEvent(t, second, "before-restart") })
	// The bot's own history route returns it too, and only its events.
	r := call(t, "GET", second.base+"/api/bots/bot/events", bearer(second.AccessToken()), nil)
	if r.code != 200 || !strings.Contains(string(r.body), "before-restart") {
		t.Fatalf("GET /api/bots/bot/events: %d %s", r.code, r.body)
	}
	if r := call(t, "GET", second.base+"/api/bots/nobody/events", bearer(second.AccessToken()), nil); r.code != 404 {
		t.Fatalf("unknown bot's events: %d", r.code)
	}
}

func TestHistoryIsSharedAcrossAClusterAndReplicated(t *testing.T) {
	// As operators do: every dashboard is given every cluster address.
	var listens, routes []string
	for range 3 {
		addr := freeAddr(t)
		listens = append(listens, addr)
		routes = append(routes, "nats://"+addr)
	}
	var ds []*testDashboard
	logins := sharedBusDir(t)
	for i := range 3 {
		td := newTestDashboard(t)
		bustest.CopyBusDir(t, logins, td.DataDir)
		td.ClusterListen, td.ClusterName, td.Routes = listens[i], "t", routes
		mustRun(t, td)
		ds = append(ds, td)
	}
	nc := connect(t, ds[0])
	js, _ := jetstream.New(connectAs(t, ds[0], bus.LoginOperator))
	// A JetStream cluster takes a few seconds to elect its leaders.
	waitLong(t, "events stream with 3 replicas", func() bool {
		s, err := js.Stream(context.Background(), history.StreamName)
		return err == nil && s.CachedInfo().Config.Replicas == 3
	})
	publishEvent(t, nc, bus.Event{Time: time.Now().UTC(), Name: "bot", Type: bus.EventRestarted, PID: 7, Reason: "clustered-history", RequestedBy: "test"})
	for _, td := range ds {
		waitFor(t, "event on every dashboard", func() bool { return hasEvent(t, td, "clustered-history") })
	}
	// A fourth dashboard, started later, shows the earlier event at once.
	late := newTestDashboard(t)
	bustest.CopyBusDir(t, logins, late.DataDir)
	late.ClusterListen, late.ClusterName, late.Routes = freeAddr(t), "t", routes
	mustRun(t, late)
	waitLong(t, "history on a late dashboard", func() bool { return hasEvent(t, late, "clustered-history") })
}

// testEvent is the i-th event of a test, its time and reason telling it apart.
func testEvent(base time.Time, i int, reason string) bus.Event {
	return bus.Event{Time: base.Add(time.Duration(i) * time.Millisecond), Name: "bot", Type: bus.EventCrashed, PID: 100 + i, Reason: reason}
}

func reasons(evs []bus.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Reason)
	}
	return out
}

// storedEvents reads every event the history stream holds, oldest first.
func storedEvents(js jetstream.JetStream) ([]bus.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, history.StreamName)
	if err != nil {
		return nil, err
	}
	st := s.CachedInfo().State
	var evs []bus.Event
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", seq, err)
		}
		ev, err := bus.DecodeEvent(m.Data)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", seq, err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// waitStored waits until the stream holds exactly the events with reasons
// want, in that order.
func waitStored(t *testing.T, js jetstream.JetStream, want []string) {
	t.Helper()
	var got []string
	var err error
	defer func() {
		if t.Failed() {
			t.Logf("stream holds %q (err %v), want %q", got, err, want)
		}
	}()
	waitLong(t, "every event stored once, in order", func() bool {
		var evs []bus.Event
		evs, err = storedEvents(js)
		got = reasons(evs)
		return err == nil && slices.Equal(got, want)
	})
}

// botEvents is GET /api/bots/:name/events on td, oldest first.
func botEvents(t *testing.T, td *testDashboard, name string) []string {
	t.Helper()
	r := call(t, "GET", td.base+"/api/bots/"+name+"/events", bearer(td.AccessToken()), nil)
	if r.code != 200 {
		return nil
	}
	var out struct{ Events []bus.Event }
	r.json(t, &out)
	got := reasons(out.Events)
	slices.Reverse(got) // the route answers newest first
	return got
}

// waitBotEvents waits until td shows exactly want for the bot, in order.
func waitBotEvents(t *testing.T, td *testDashboard, want []string) {
	t.Helper()
	var got []string
	defer func() {
		if t.Failed() {
			t.Logf("dashboard shows %q, want %q", got, want)
		}
	}()
	waitLong(t, "every event shown once, in order", func() bool {
		got = botEvents(t, td, "bot")
		return slices.Equal(got, want)
	})
}

// recorded counts td's log lines saying it recorded an event in history.
func recorded(td *testDashboard) (stored, duplicates int) {
	for line := range strings.Lines(td.logs.String()) {
		if strings.Contains(line, "event recorded in history") {
			if strings.Contains(line, "duplicate=true") {
				duplicates++
			} else {
				stored++
			}
		}
	}
	return stored, duplicates
}

// startDashboardProcess runs a dashboard joining the cluster through
// routes, in a process of its own so that it can be killed -9, and returns
// the process and its bus server's name.
func startDashboardProcess(t *testing.T, logins, clusterAddr string, routes []string) (*exec.Cmd, string) {
	t.Helper()
	data := t.TempDir()
	bustest.CopyBusDir(t, logins, data)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LIFELINE_TEST_DASHBOARD_DATA="+data,
		"LIFELINE_TEST_CLUSTER="+clusterAddr, "LIFELINE_TEST_ROUTES="+strings.Join(routes, ","))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("dashboard process: %q %v", line, err)
	}
	host, _ := os.Hostname()
	return cmd, serverName(host, clusterAddr)
}

// TestHistoryKeepsEventsPublishedWhileTheStreamLeaderIsDead is issue 5's
// gap: the server leading the events stream is killed -9, and the events
// published while the others elect a new leader, like those published before
// the stream existed, are all kept, once each.
func TestHistoryKeepsEventsPublishedWhileTheStreamLeaderIsDead(t *testing.T) {
	var clusters, routes []string
	for range 3 {
		addr := freeAddr(t)
		clusters = append(clusters, addr)
		routes = append(routes, "nats://"+addr)
	}
	// Two dashboards in this process; the third, in a process of its own,
	// will lead the stream and be killed.
	logins := sharedBusDir(t)
	victimProc, victim := startDashboardProcess(t, logins, clusters[2], routes)
	var ds []*testDashboard
	for i := range 2 {
		td := newTestDashboard(t)
		bustest.CopyBusDir(t, logins, td.DataDir)
		td.ClusterListen, td.ClusterName, td.Routes = clusters[i], "t", routes
		mustRun(t, td)
		ds = append(ds, td)
	}
	agent := connect(t, ds[0])      // publishes events as an agent does
	admin := connectAdmin(t, ds[0]) // moves the stream leader: a dashboard's right
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC()
	want := []string{"before-the-stream"}
	// The cluster is still forming: no stream can exist yet.
	if _, err := js.Stream(context.Background(), history.StreamName); err == nil {
		t.Log("the stream already exists; the first event tests nothing special")
	}
	publishEvent(t, agent, testEvent(base, 0, want[0]))

	// Move the stream's leader to the victim once all three replicas are
	// current, so that losing it keeps a quorum.
	var seen string
	defer func() {
		if t.Failed() {
			t.Logf("last seen of the stream: %s", seen)
		}
	}()
	waitLong(t, "events stream on 3 current servers, led by the victim", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, history.StreamName)
		if err != nil {
			seen = err.Error()
			return false
		}
		info := s.CachedInfo()
		seen = fmt.Sprintf("replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
		// Both followers listed and current: an empty list would pass the
		// loop below while the new replicas still catch up, and a leader
		// killed then leaves no one able to take over.
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, p := range info.Cluster.Replicas {
			if !p.Current || p.Offline {
				return false
			}
		}
		if info.Cluster.Leader == victim {
			return true
		}
		msg, err := admin.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+history.StreamName, []byte(`{"placement":{"preferred":"`+victim+`"}}`))
		if err == nil {
			seen += "; stepdown: " + string(msg.Data)
		}
		return false
	})
	want = append(want, "before-the-kill")
	publishEvent(t, agent, testEvent(base, 1, want[1]))
	waitStored(t, js, want)

	if err := victimProc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victimProc.Wait()
	// The survivors take seconds to notice and elect a new leader; these
	// are published at once, with no leader to store them.
	for i := range 5 {
		want = append(want, fmt.Sprintf("during-the-election-%d", i))
		publishEvent(t, agent, testEvent(base, 2+i, want[len(want)-1]))
	}
	waitStored(t, js, want)
	for _, td := range ds {
		waitBotEvents(t, td, want)
	}
	// A dashboard started now shows them all from the history alone.
	late := newTestDashboard(t)
	bustest.CopyBusDir(t, logins, late.DataDir)
	late.ClusterListen, late.ClusterName, late.Routes = freeAddr(t), "t", routes
	mustRun(t, late)
	waitBotEvents(t, late, want)
}

// TestHistoryStoresOnceWhatTwoDashboardsRecord: two dashboards on one bus
// both record each event; the stream keeps one copy.
func TestHistoryStoresOnceWhatTwoDashboardsRecord(t *testing.T) {
	first := startDashboard(t)
	// The second dashboard writes history too, so it logs in with the
	// first one's own rights.
	second := newTestDashboard(t)
	second.ExternalNATS = strings.Replace(first.NATSURL(), "nats://", "nats://"+first.admin.Name+":"+first.admin.Password+"@", 1)
	mustRun(t, second)
	agent := connect(t, first)
	js, err := jetstream.New(connectAdmin(t, first))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC()
	want := []string{"one", "two", "three"}
	for i, r := range want {
		publishEvent(t, agent, testEvent(base, i, r))
	}
	waitFor(t, "both dashboards to record the three events", func() bool {
		s1, d1 := recorded(first)
		s2, d2 := recorded(second)
		return s1+d1 == 3 && s2+d2 == 3
	})
	s1, d1 := recorded(first)
	s2, d2 := recorded(second)
	if s1+s2 != 3 || d1+d2 != 3 {
		t.Errorf("stored %d and %d, duplicates %d and %d: want 3 stored and 3 duplicates in all", s1, s2, d1, d2)
	}
	evs, err := storedEvents(js)
	if err != nil || !slices.Equal(reasons(evs), want) {
		t.Fatalf("stream holds %q (err %v), want %q", reasons(evs), err, want)
	}
	waitBotEvents(t, second, want)
}

// startWithHistory runs a dashboard and returns it with a connection to its
// bus (publishing events as an agent does) and JetStream on that connection,
// once the events stream exists.
func startWithHistory(t *testing.T) (*testDashboard, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	td := startDashboard(t)
	agent := connect(t, td)
	return td, agent, waitForStream(t, connectAdmin(t, td))
}

// waitForStream waits until the events stream exists on nc's bus.
func waitForStream(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "events stream", func() bool {
		_, err := js.Stream(context.Background(), history.StreamName)
		return err == nil
	})
	return js
}

// TestHistoryRecordsEventsPublishedBeforeTheStreamExists: an event that
// arrives while there is no stream is stored once the stream is made, and a
// dashboard that started in between, too late to receive it, shows it.
func TestHistoryRecordsEventsPublishedBeforeTheStreamExists(t *testing.T) {
	td, agent, js := startWithHistory(t)
	// As if the stream were not made yet (a cluster still forming).
	if err := js.DeleteStream(context.Background(), history.StreamName); err != nil {
		t.Fatal(err)
	}
	publishEvent(t, agent, testEvent(time.Now().UTC(), 0, "no-stream-yet"))
	waitFor(t, "the dashboard to retry", func() bool {
		return strings.Contains(td.logs.String(), "event history not ready; retrying")
	})
	// A second dashboard makes the stream again, and reads it at once,
	// likely before the first's next attempt stores the event.
	late := newTestDashboard(t)
	late.ExternalNATS = strings.Replace(td.NATSURL(), "nats://", "nats://"+td.admin.Name+":"+td.admin.Password+"@", 1)
	mustRun(t, late)
	waitStored(t, js, []string{"no-stream-yet"})
	waitBotEvents(t, late, []string{"no-stream-yet"})
}

// TestHistoryMovesAnOldStreamToTheHistorySubjects: a stream made by an older
// dashboard captured the agents' subject; it is moved to the dashboards' own,
// keeping its events, and new events are stored once, not twice.
func TestHistoryMovesAnOldStreamToTheHistorySubjects(t *testing.T) {
	cfg := history.StreamConfig(1)
	cfg.Subjects, cfg.Duplicates = []string{bus.EventsWildcard}, 0
	base := time.Now().UTC()
	dir := oldStream(t, cfg, bus.EventsSubject("bot"), bus.Encode(testEvent(base, 0, "old-dashboard")))

	td := newTestDashboard(t)
	td.DataDir = dir
	mustRun(t, td)
	waitFor(t, "the old event", func() bool { return hasEvent(t, td, "old-dashboard") })
	agent := connect(t, td)
	js, _ := jetstream.New(connectAs(t, td, bus.LoginOperator))
	s, err := js.Stream(context.Background(), history.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; !slices.Equal(got.Subjects, []string{bus.HistoryWildcard}) || got.Duplicates != history.StreamConfig(1).Duplicates {
		t.Fatalf("stream subjects %v, duplicate window %v", got.Subjects, got.Duplicates)
	}
	publishEvent(t, agent, testEvent(base, 1, "new-dashboard"))
	waitStored(t, js, []string{"old-dashboard", "new-dashboard"})
	waitFor(t, "the dashboard to record it", func() bool { n, _ := recorded(td); return n == 1 })
	if evs, err := storedEvents(js); err != nil || len(evs) != 2 {
		t.Fatalf("stream holds %q (err %v), want the two events once each", reasons(evs), err)
	}
}

// TestHistoryShowsEventsStoredLate: an event that another dashboard stores
// after this one has read the history (as happens after a leader election),
// and that this one never received live, shows here too.
func TestHistoryShowsEventsStoredLate(t *testing.T) {
	td, agent, js := startWithHistory(t)
	base := time.Now().UTC()
	publishEvent(t, agent, testEvent(base, 0, "seen-live"))
	waitStored(t, js, []string{"seen-live"})
	// Straight into the stream, as another dashboard records it.
	if _, err := js.Publish(context.Background(), bus.HistorySubject("bot"), bus.Encode(testEvent(base, 1, "stored-late"))); err != nil {
		t.Fatal(err)
	}
	waitBotEvents(t, td, []string{"seen-live", "stored-late"})
}

// TestHistoryThenLiveCopyShownOnce: another dashboard may store an event,
// and this one read it from the history, before this one's live copy is
// handled; the event is kept once, and still sent to live streams.
func TestHistoryThenLiveCopyShownOnce(t *testing.T) {
	s, _ := newTestState()
	sub, _ := s.subscribe()
	e := testEvent(time.Now().UTC(), 0, "both-ways")
	s.history([]bus.Event{e})
	s.event(e)
	if got := reasons(s.recentEvents()); !slices.Equal(got, []string{"both-ways"}) {
		t.Fatalf("events %q, want the one once", got)
	}
	select {
	case m := <-sub.ch:
		if m.event != "event" {
			t.Fatalf("stream got %q, want the event", m.event)
		}
	default:
		t.Fatal("the live copy was not sent to the stream")
	}
}

// sharedBusDir makes the bus directory (logins and route secret) that the
// dashboards of one cluster share, as operators copy the first one's.
func sharedBusDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bus")
	if _, err := bus.EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}
