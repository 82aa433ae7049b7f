package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// waitWithin waits for cond up to d, asking every 50 ms: a condition that
// costs a big /api/bots answer is not asked in a busy loop, and the caller
// sizes d to the work.
func waitWithin(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTenThousandBotsTracked: one heartbeat from each of 10,000 bots, and
// /api/bots lists every one of them with its PID; a live stream opened after
// gets them all in its snapshot, in events of at most snapshotChunk.
func TestTenThousandBotsTracked(t *testing.T) {
	td := startDashboard(t)
	nc := connect(t, td)
	const bots = 10_000
	now := time.Now().UTC()
	for i := range bots {
		name := fmt.Sprintf("fleet-%05d", i)
		hb := bus.Heartbeat{Name: name, PID: 1000 + i, Host: "h", Seq: 1, Time: now}
		if err := nc.Publish(bus.HeartbeatSubject(name), bus.Encode(hb)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var list botList
	waitWithin(t, "every bot listed", 60*time.Second, func() bool {
		list = botList{}
		call(t, http.MethodGet, td.base+"/api/bots", bearer(td.AccessToken()), nil).json(t, &list)
		return len(list.Bots) >= bots+1
	})
	// Each with its heartbeat's PID; running, or unknown once the one
	// heartbeat is older than heartbeatFresh (a slow machine).
	ours := 0
	for _, st := range list.Bots {
		var i int
		if _, err := fmt.Sscanf(st.Name, "fleet-%05d", &i); err == nil && st.PID == 1000+i &&
			(st.State == bus.StateRunning || st.State == bus.StateUnknown) {
			ours++
		}
	}
	if len(list.Bots) != bots+1 || ours != bots {
		t.Fatalf("/api/bots lists %d bots, %d of ours with their PID; want %d and %d", len(list.Bots), ours, bots+1, bots)
	}

	events := openStream(t, td)
	seen := make(map[string]bool)
	deadline := time.After(60 * time.Second)
	for len(seen) < bots+1 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended during the snapshot")
			}
			if ev.name != "statuses" {
				continue
			}
			var sts []bus.Status
			if err := json.Unmarshal([]byte(ev.data), &sts); err != nil {
				t.Fatalf("snapshot event: %v", err)
			}
			if len(sts) > snapshotChunk {
				t.Fatalf("a snapshot event holds %d statuses, more than %d", len(sts), snapshotChunk)
			}
			for _, st := range sts {
				seen[st.Name] = true
			}
		case <-deadline:
			t.Fatalf("the snapshot brought %d bots of %d", len(seen), bots+1)
		}
	}
}
