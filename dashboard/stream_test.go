package dashboard

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// TestEventTakesWaitingStatuses: a lifecycle event goes to the streams at
// once, and the statuses waiting for the next flush go with it, handed over
// together so that a stream's writer writes them in one go.
func TestEventTakesWaitingStatuses(t *testing.T) {
	s, clock := newTestState()
	sub, _ := s.subscribe()
	defer s.streams.Done()
	s.heartbeat(bus.Heartbeat{Name: "beater", PID: 9, Time: clock.t})
	nothingSent(t, sub, "a heartbeat before its flush")
	s.event(bus.Event{Time: clock.t, Name: "other", Type: bus.EventCrashed})
	var got []string
	for range 2 {
		select {
		case m := <-sub.ch:
			got = append(got, m.event)
			if m.event == "statuses" {
				if list := statusesIn(t, m); len(list) != 1 || list[0].Name != "beater" {
					t.Errorf("statuses sent with the event: %+v", list)
				}
			}
		default:
		}
	}
	if strings.Join(got, ",") != "event,statuses" {
		t.Fatalf("after the event the stream got %q, want the event and the waiting statuses", got)
	}
	s.flush()
	nothingSent(t, sub, "the flush after the event took its statuses")
}

// TestStreamOnTheConnection: the stream is written on the connection itself,
// so the response header is built by hand: it must still carry the
// security headers every response gets, and be chunked for HTTP/1.1 and end
// with the connection for HTTP/1.0, with the same events either way.
func TestStreamOnTheConnection(t *testing.T) {
	td := startDashboard(t)
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		t.Run(proto, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(td.base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /api/stream %s\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", proto, td.AccessToken())
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			req, _ := http.NewRequest(http.MethodGet, "/api/stream", nil)
			resp, err := http.ReadResponse(bufio.NewReader(conn), req)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			// No resp.Body.Close: it would read the endless body to its end.
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("HTTP %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Cache-Control"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("stream response without %s: %v", h, resp.Header)
				}
			}
			chunked := len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked"
			if chunked != (proto == "HTTP/1.1") || resp.ContentLength != -1 {
				t.Errorf("%s: transfer encoding %q, length %d", proto, resp.TransferEncoding, resp.ContentLength)
			}
			r := bufio.NewReader(resp.Body)
			var head strings.Builder
			for !strings.Contains(head.String(), `"name":"bot"`) {
				line, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("read stream: %v (so far %q)", err, head.String())
				}
				head.WriteString(line)
			}
			if !strings.HasPrefix(head.String(), "retry: 2000\n\nevent: statuses\ndata: [") {
				t.Errorf("stream starts %q", head.String())
			}
			// A change after the snapshot comes as an event of its own.
			nc := connect(t, td)
			nc.Publish(bus.HeartbeatSubject("raw"), bus.Encode(bus.Heartbeat{Name: "raw", PID: 5, Host: "h", Time: time.Now()}))
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("read stream: %v", err)
				}
				if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"name":"raw"`) {
					break
				}
			}
		})
	}
}
