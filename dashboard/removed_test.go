package dashboard

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// TestStreamSaysWhichBotsWereForgotten: a bot silent past the expiry is
// forgotten, and a live stream is told so in a "removed" event, so that a
// page drops its row without a reload; the default bot is never forgotten.
func TestStreamSaysWhichBotsWereForgotten(t *testing.T) {
	td := startDashboard(t)
	td.state.setExpiry(2 * time.Second)
	nc := connect(t, td)
	stream := openStream(t, td)
	hb := bus.Heartbeat{Name: "passing", PID: 4242, Time: time.Now().UTC()}
	if err := nc.Publish(bus.HeartbeatSubject(hb.Name), bus.Encode(hb)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the passing bot listed", func() bool { return slices.Contains(botNames(t, td), "passing") })
	ev := nextEvent(t, stream, `a "removed" event`, func(ev sseEvent) bool { return ev.name == "removed" })
	var names []string
	if err := json.Unmarshal([]byte(ev.data), &names); err != nil {
		t.Fatalf("removed event %q: %v", ev.data, err)
	}
	if !slices.Equal(names, []string{"passing"}) {
		t.Fatalf("removed %q, want only the silent bot", names)
	}
	if got := botNames(t, td); slices.Contains(got, "passing") || !slices.Contains(got, "bot") {
		t.Fatalf("after the removed event /api/bots lists %q, want the default bot and not the silent one", got)
	}
}
