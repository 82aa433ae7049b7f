package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDecodeRequest(t *testing.T) {
	for _, ok := range []string{"", " \r\n", "{}", ` {"requested_by":"cli alice@web-1"} `, `{"requested_by":null}`} {
		if _, err := DecodeRequest([]byte(ok)); err != nil {
			t.Errorf("DecodeRequest(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		// null decodes into a struct without complaint in encoding/json; it
		// once passed as an empty request (found by FuzzDecodeRequest).
		"null", " null\n", "[]", `"x"`, "0", "true", "garbage",
		`{"requested_by":5}`, `{"other":1}`, `{}{}`, `{} x`,
		`{"requested_by":"` + strings.Repeat("x", 257) + `"}`,
		`{"requested_by":"x"}` + strings.Repeat(" ", MaxRequestBytes),
	} {
		if r, err := DecodeRequest([]byte(bad)); !errors.Is(err, ErrBadRequest) || r != (Request{}) {
			t.Errorf("DecodeRequest(%.40q) = %+v, %v; want ErrBadRequest", bad, r, err)
		}
	}
}

func TestDecodeEventType(t *testing.T) {
	for _, typ := range []string{"started", "crashed", "adopted", "paused"} { // a future type passes
		if _, err := DecodeEvent([]byte(`{"name":"bot","type":"` + typ + `"}`)); err != nil {
			t.Errorf("type %q: %v", typ, err)
		}
	}
	for _, body := range []string{
		`{"name":"bot"}`, `{"name":"bot","type":""}`, `{"name":"bot","type":"Started"}`,
		`{"name":"bot","type":"<script>"}`, `{"name":"bot","type":"` + strings.Repeat("x", 33) + `"}`,
		`{"name":"bot","pid":4242,"seq":1}`, // a heartbeat on the events subject
	} {
		if _, err := DecodeEvent([]byte(body)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("DecodeEvent(%s) = %v; want ErrBadRequest", body, err)
		}
	}
}

// TestDecodersRefuseOversized: every field a bot or an agent fills has a
// limit, and so has each whole message; one byte past any of them is
// refused, so nothing oversized reaches a dashboard's memory or the history.
func TestDecodersRefuseOversized(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	long := func(n int) string { return strings.Repeat("x", n) }
	stats := func(n, keyLen int) map[string]int64 {
		m := map[string]int64{}
		for i := range n {
			m[fmt.Sprintf("%0*d", keyLen, i)] = 1
		}
		return m
	}
	// json.Marshal, not Encode, which would clip.
	raw := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hb := Heartbeat{Name: "b", PID: 1, Time: at}
	ev := Event{Time: at, Name: "b", Type: EventCrashed}
	st := Status{Name: "b", State: StateRunning}
	tests := []struct {
		what       string
		ok, tooBig []byte
		decode     func([]byte) error
	}{
		{"heartbeat host", raw(with(hb, func(h *Heartbeat) { h.Host = long(MaxTextBytes) })), raw(with(hb, func(h *Heartbeat) { h.Host = long(MaxTextBytes + 1) })), decodeHB},
		{"heartbeat version", raw(with(hb, func(h *Heartbeat) { h.Version = long(MaxTextBytes) })), raw(with(hb, func(h *Heartbeat) { h.Version = long(MaxTextBytes + 1) })), decodeHB},
		{"heartbeat stats", raw(with(hb, func(h *Heartbeat) { h.Stats = stats(MaxStats, 8) })), raw(with(hb, func(h *Heartbeat) { h.Stats = stats(MaxStats+1, 8) })), decodeHB},
		{"heartbeat stat name", raw(with(hb, func(h *Heartbeat) { h.Stats = stats(1, MaxStatKeyBytes) })), raw(with(hb, func(h *Heartbeat) { h.Stats = stats(1, MaxStatKeyBytes+1) })), decodeHB},
		{"heartbeat size", padded(raw(hb), MaxMessageBytes), padded(raw(hb), MaxMessageBytes+1), decodeHB},
		{"event reason", raw(with(ev, func(e *Event) { e.Reason = long(MaxTextBytes) })), raw(with(ev, func(e *Event) { e.Reason = long(MaxTextBytes + 1) })), decodeEv},
		{"event requested_by", raw(with(ev, func(e *Event) { e.RequestedBy = long(MaxTextBytes) })), raw(with(ev, func(e *Event) { e.RequestedBy = long(MaxTextBytes + 1) })), decodeEv},
		{"event size", padded(raw(ev), MaxMessageBytes), padded(raw(ev), MaxMessageBytes+1), decodeEv},
		{"event of 1 MB", raw(ev), padded(raw(ev), 1<<20), decodeEv},
		{"status problem", raw(with(st, func(s *Status) { s.Problem = long(MaxProblemBytes) })), raw(with(st, func(s *Status) { s.Problem = long(MaxProblemBytes + 1) })), decodeSt},
		{"status text", raw(with(st, func(s *Status) { s.StatusText = long(MaxStatusTextBytes) })), raw(with(st, func(s *Status) { s.StatusText = long(MaxStatusTextBytes + 1) })), decodeSt},
		{"status exit reason", raw(with(st, func(s *Status) { s.LastExit = &Exit{Reason: long(MaxTextBytes)} })), raw(with(st, func(s *Status) { s.LastExit = &Exit{Reason: long(MaxTextBytes + 1)} })), decodeSt},
		{"status agent bus", raw(with(st, func(s *Status) { s.Agent.Bus = long(MaxTextBytes) })), raw(with(st, func(s *Status) { s.Agent.Bus = long(MaxTextBytes + 1) })), decodeSt},
		{"status stats", raw(with(st, func(s *Status) { s.Stats = stats(MaxStats, 8) })), raw(with(st, func(s *Status) { s.Stats = stats(MaxStats+1, 8) })), decodeSt},
		{"status name", raw(st), raw(with(st, func(s *Status) { s.Name = "a.b" })), decodeSt},
		{"status size", padded(raw(st), MaxStatusBytes), padded(raw(st), MaxStatusBytes+1), decodeSt},
		{"reply error", raw(Reply{Error: long(MaxProblemBytes)}), raw(Reply{Error: long(MaxProblemBytes + 1)}), decodeRe},
		{"reply size", padded(raw(Reply{OK: true}), MaxMessageBytes), padded(raw(Reply{OK: true}), MaxMessageBytes+1), decodeRe},
	}
	for _, tt := range tests {
		if err := tt.decode(tt.ok); err != nil {
			t.Errorf("%s at the limit refused: %v", tt.what, err)
		}
		if err := tt.decode(tt.tooBig); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s past the limit: err %v, want ErrBadRequest", tt.what, err)
		}
	}
}

// TestEncodeClipsWhatLifelineSends: a long error text or a bot with many
// stats is clipped by Encode, not refused by the other side.
func TestEncodeClipsWhatLifelineSends(t *testing.T) {
	stats := map[string]int64{strings.Repeat("k", MaxStatKeyBytes+1): 1}
	for i := range 2 * MaxStats {
		stats[fmt.Sprintf("s%02d", i)] = int64(i)
	}
	hb, err := DecodeHeartbeat(Encode(Heartbeat{Name: "b", PID: 1, Host: strings.Repeat("h", 1000), Stats: stats}))
	if err != nil {
		t.Fatalf("own heartbeat refused: %v", err)
	}
	if len(hb.Host) != MaxTextBytes || len(hb.Stats) != MaxStats || hb.Stats["s00"] != 0 || hb.Stats["s31"] != 31 {
		t.Errorf("clipped heartbeat: host of %d bytes, stats %v", len(hb.Host), hb.Stats)
	}
	if len(stats) != 2*MaxStats+1 {
		t.Errorf("Encode changed the caller's stats: %d left", len(stats))
	}
	// Clipped at a character boundary: é is two bytes.
	ev, err := DecodeEvent(Encode(Event{Name: "b", Type: EventBackoff, Reason: strings.Repeat("é", MaxTextBytes)}))
	if err != nil || ev.Reason != strings.Repeat("é", MaxTextBytes/2) {
		t.Errorf("clipped reason %q, err %v", ev.Reason, err)
	}
	r, err := DecodeReply(Encode(Reply{Error: "cannot start bot: " + strings.Repeat("/long/path", 500)}))
	if err != nil || len(r.Error) != MaxProblemBytes {
		t.Errorf("clipped error of %d bytes, err %v", len(r.Error), err)
	}
}

func with[T any](v T, change func(*T)) T {
	change(&v)
	return v
}

// padded adds an unknown field to the JSON object b so that it is exactly n
// bytes long.
func padded(b []byte, n int) []byte {
	const open, end = `,"pad":"`, `"}`
	fill := n - (len(b) - 1) - len(open) - len(end)
	return append(b[:len(b)-1:len(b)-1], open+strings.Repeat("p", fill)+end...)
}

func decodeHB(b []byte) error { _, err := DecodeHeartbeat(b); return err }
func decodeEv(b []byte) error { _, err := DecodeEvent(b); return err }
func decodeSt(b []byte) error { _, err := DecodeStatus(b); return err }
func decodeRe(b []byte) error { _, err := DecodeReply(b); return err }
