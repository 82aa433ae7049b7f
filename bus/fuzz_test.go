package bus

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The fuzz targets below cover every decoder and parser in the wire
// protocol. Each asserts properties rather than outputs: nothing panics, a
// refusal wraps ErrBadRequest and returns the zero value, and whatever is
// accepted survives encode → decode → encode unchanged. `make fuzz` runs each
// for a few seconds; crashers found are kept under testdata/fuzz/ and replayed
// by `go test` as regression tests.

// seedMessages are valid and invalid bodies shared by the decoder targets.
var seedMessages = []string{
	"",
	" \n\t",
	"null",
	"{}",
	"[]",
	"garbage",
	`"string"`,
	"5",
	`{"requested_by":"cli alice@web-1"}`,
	`{"requested_by":5}`,
	`{"requested_by":null}`,
	`{"requested_by":"x","unknown":1}`,
	`{"requested_by":"x"} {}`,
	`{"requested_by":"\xff\xfe"}`,
	`{"name":"bot","pid":4242,"host":"web-1","seq":17,"time":"2026-11-25T10:05:00Z","started_at":"2026-11-25T10:00:00Z","version":"1.2.0","stats":{"processed":12}}`,
	`{"name":"bot","pid":0}`,
	`{"name":"bot","pid":-1}`,
	`{"name":"bot.x","pid":2}`,
	`{"name":"bot","pid":2,"seq":18446744073709551615}`,
	`{"name":"bot","pid":2,"seq":-1}`,
	`{"name":"bot","pid":2,"time":"not a time"}`,
	`{"name":"bot","pid":2,"time":"2026-11-25T10:05:00.123456789123+23:59"}`,
	`{"name":"bot","pid":2,"stats":{"\u0000":1,"x":9223372036854775807}}`,
	`{"name":"bot","state":"running","pid":4242,"started_at":"2026-11-25T10:00:00Z","heartbeat_age_ms":310,"restarts":2,"last_exit":{"at":"2026-11-25T10:00:00Z","code":-1,"signal":"killed","reason":"hung"},"agent":{"pid":4100,"connected":true},"cpu_percent":1e-300}`,
	`{"ok":true,"old_pid":1,"new_pid":2,"took_ms":35}`,
	`{"ok":false,"error":"no"}`,
	`{"time":"2026-11-25T10:00:00Z","name":"bot","type":"crashed","pid":4242,"reason":"signal killed","requested_by":"x"}`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`{"requested_by":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
}

func addSeeds(f *testing.F) {
	for _, s := range seedMessages {
		f.Add([]byte(s))
	}
}

// roundTrip checks that v, once encoded, decodes to something that encodes
// the same, and returns the encoding.
func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, error)) []byte {
	t.Helper()
	enc := Encode(v)
	again, err := decode(enc)
	if err != nil {
		t.Fatalf("decode of own encoding %s: %v", enc, err)
	}
	if enc2 := Encode(again); !bytes.Equal(enc, enc2) {
		t.Fatalf("round trip changed the message:\n first %s\nsecond %s", enc, enc2)
	}
	return enc
}

// refused checks the contract of a refusal.
func refused[T comparable](t *testing.T, data []byte, v T, err error) {
	t.Helper()
	var zero T
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("refusal of %q does not wrap ErrBadRequest: %v", data, err)
	}
	if v != zero {
		t.Fatalf("refusal of %q returned a value: %+v", data, v)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRequest(data)
		if err != nil {
			refused(t, data, r, err)
			return
		}
		blank := len(bytes.TrimSpace(data)) == 0
		if !blank && (len(data) > MaxRequestBytes || bytes.TrimSpace(data)[0] != '{') {
			t.Fatalf("accepted %q, which is not a JSON object of at most %d bytes", data, MaxRequestBytes)
		}
		if blank && r != (Request{}) {
			t.Fatalf("blank body gave %+v", r)
		}
		if len(r.RequestedBy) > 256 {
			t.Fatalf("accepted requested_by of %d bytes", len(r.RequestedBy))
		}
		roundTrip(t, r, DecodeRequest)
	})
}

func FuzzDecodeHeartbeat(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		hb, err := DecodeHeartbeat(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal of %q does not wrap ErrBadRequest: %v", data, err)
			}
			if hb.Name != "" || hb.PID != 0 || hb.Stats != nil {
				t.Fatalf("refusal of %q returned a value: %+v", data, hb)
			}
			return
		}
		if ValidName(hb.Name) != nil || hb.PID <= 0 {
			t.Fatalf("accepted heartbeat with name %q and pid %d", hb.Name, hb.PID)
		}
		if len(data) > MaxMessageBytes {
			t.Fatalf("accepted a heartbeat of %d bytes", len(data))
		}
		withinLimits(t, hb.Host, hb.Version, hb.Stats)
		// Escaping can make the encoding longer than the input; past the
		// size limit it is rightly refused.
		if len(Encode(hb)) <= MaxMessageBytes {
			roundTrip(t, hb, DecodeHeartbeat)
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeStatus(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) || st.Name != "" || st.Stats != nil || st.LastExit != nil {
				t.Fatalf("refusal of %q: %+v, %v", data, st, err)
			}
			return
		}
		if len(data) > MaxStatusBytes || (st.Name != "" && ValidName(st.Name) != nil) {
			t.Fatalf("accepted a status of %d bytes named %q", len(data), st.Name)
		}
		withinLimits(t, st.Host, st.Version, st.Stats)
		withinLimits(t, st.Agent.Host, st.Agent.Bus, nil)
		if len(st.Problem) > MaxProblemBytes || len(st.State) > 32 {
			t.Fatalf("accepted problem of %d bytes, state of %d", len(st.Problem), len(st.State))
		}
		if x := st.LastExit; x != nil {
			withinLimits(t, x.Signal, x.Reason, nil)
		}
		if len(Encode(st)) <= MaxStatusBytes {
			roundTrip(t, st, DecodeStatus)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeReply(data)
		if err != nil {
			refused(t, data, r, err)
			return
		}
		if len(data) > MaxMessageBytes || len(r.Error) > MaxProblemBytes {
			t.Fatalf("accepted a reply of %d bytes with an error of %d", len(data), len(r.Error))
		}
		if len(Encode(r)) <= MaxMessageBytes {
			roundTrip(t, r, DecodeReply)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEvent(data)
		if err != nil {
			refused(t, data, e, err)
			return
		}
		if ValidName(e.Name) != nil {
			t.Fatalf("accepted event for bad name %q", e.Name)
		}
		if e.Type == "" || len(e.Type) > 32 || strings.Trim(string(e.Type), "abcdefghijklmnopqrstuvwxyz") != "" {
			t.Fatalf("accepted event of type %q", e.Type)
		}
		if len(data) > MaxMessageBytes {
			t.Fatalf("accepted an event of %d bytes", len(data))
		}
		withinLimits(t, e.Reason, e.RequestedBy, nil)
		if len(Encode(e)) <= MaxMessageBytes {
			roundTrip(t, e, DecodeEvent)
		}
	})
}

// withinLimits fails unless two short text fields and a stats map are
// within the decoders' limits.
func withinLimits(t *testing.T, a, b string, stats map[string]int64) {
	t.Helper()
	if len(a) > MaxTextBytes || len(b) > MaxTextBytes {
		t.Fatalf("accepted text of %d and %d bytes", len(a), len(b))
	}
	if len(stats) > MaxStats {
		t.Fatalf("accepted %d stats", len(stats))
	}
	for k := range stats {
		if len(k) > MaxStatKeyBytes {
			t.Fatalf("accepted a stat name of %d bytes", len(k))
		}
	}
}

// FuzzEncodeClips builds messages from arbitrary text and stats, the way
// bots and agents fill them, and checks that Encode keeps them within the
// limits: what lifeline sends, lifeline accepts (unless JSON escaping of odd
// characters inflates it past the whole-message limit).
func FuzzEncodeClips(f *testing.F) {
	f.Add("web-1", "signal killed", "v1.2.3", 3, 8)
	f.Add(strings.Repeat("h", 300), strings.Repeat("é", 200), "\xff\xfe", 40, 70)
	f.Add("", "", "", 0, 0)
	f.Fuzz(func(t *testing.T, text, reason, version string, nStats, keyLen int) {
		nStats, keyLen = min(max(nStats, 0), 200), min(max(keyLen, 1), 200)
		stats := map[string]int64{}
		for i := range nStats {
			stats[fmt.Sprintf("%0*d", keyLen, i)] = int64(i)
		}
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		inflated := func(b []byte, limit int) bool {
			return len(b) > limit && bytes.ContainsAny(b, `\`)
		}
		if b := Encode(Heartbeat{Name: "b", PID: 1, Host: text, Version: version, Time: at, Stats: stats}); !inflated(b, MaxMessageBytes) {
			if _, err := DecodeHeartbeat(b); err != nil {
				t.Fatalf("own heartbeat %s refused: %v", b, err)
			}
		}
		if b := Encode(Event{Time: at, Name: "b", Type: EventBackoff, Reason: reason, RequestedBy: text}); !inflated(b, MaxMessageBytes) {
			if _, err := DecodeEvent(b); err != nil {
				t.Fatalf("own event %s refused: %v", b, err)
			}
		}
		st := Status{Name: "b", State: StateBackoff, Host: text, Version: version, Problem: reason + text + reason + text,
			LastExit: &Exit{At: at, Signal: version, Reason: reason}, Agent: AgentInfo{Host: text, Bus: text}, Stats: stats}
		if b := Encode(st); !inflated(b, MaxStatusBytes) {
			if _, err := DecodeStatus(b); err != nil {
				t.Fatalf("own status %s refused: %v", b, err)
			}
		}
		if b := Encode(Reply{Error: reason + text + reason + text + reason}); !inflated(b, MaxMessageBytes) {
			if _, err := DecodeReply(b); err != nil {
				t.Fatalf("own reply %s refused: %v", b, err)
			}
		}
	})
}

// nameAlphabet is SPEC's rule for bot names, written independently of
// ValidName's loop.
var nameAlphabet = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"bot", "a", "my-bot_2", strings.Repeat("x", 64), strings.Repeat("x", 65),
		"", "a.b", "a b", "*", ">", "bot\n", "é", "..", "../x", "bot\x00", "ｂｏｔ", "$SRV"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidName(name)
		if want := nameAlphabet.MatchString(name); (err == nil) != want {
			t.Fatalf("ValidName(%q) = %v, want accepted=%v", name, err, want)
		}
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("ValidName(%q) = %v, not ErrBadName", name, err)
			}
			return
		}
		// An accepted name is exactly one subject token, so every subject
		// built from it names it back.
		for _, subject := range []string{HeartbeatSubject(name), ShutdownSubject(name), EventsSubject(name),
			AgentSubject(name, OpStatus), AgentSubject(name, OpRestart), AgentSubject(name, OpStop), AgentSubject(name, OpStart)} {
			if got := NameFromSubject(subject); got != name {
				t.Fatalf("NameFromSubject(%q) = %q, want %q", subject, got, name)
			}
		}
	})
}

func FuzzNameFromSubject(f *testing.F) {
	for _, s := range []string{"lifeline.bot.b1.heartbeat", "lifeline.agent.b-2.status", "lifeline.events.x_y",
		"lifeline.bot.a.b.heartbeat", "lifeline.events", "lifeline.events.", "other.bot.b1.heartbeat",
		"lifeline.bot.b1.HB", "lifeline.bot.*.heartbeat", "lifeline.events.>", "lifeline.agent..status", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		name := NameFromSubject(subject)
		if name == "" {
			return
		}
		if err := ValidName(name); err != nil {
			t.Fatalf("NameFromSubject(%q) = %q, not a valid name", subject, name)
		}
		if subject != EventsSubject(name) &&
			!strings.HasPrefix(subject, "lifeline.bot."+name+".") &&
			!strings.HasPrefix(subject, "lifeline.agent."+name+".") {
			t.Fatalf("NameFromSubject(%q) = %q, which is not its name token", subject, name)
		}
		if strings.Count(subject, ".") > 3 {
			t.Fatalf("NameFromSubject(%q) = %q from a subject with extra tokens", subject, name)
		}
	})
}

// semVer is the pattern nats.go's micro package checks service versions
// against (micro/service.go); a version it refuses would keep the agent's
// service from registering at all.
var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

func FuzzServiceVersion(f *testing.F) {
	for _, s := range []string{"", "dev", "1.2", "v1.2.3", "1.2.3", "v1.2.3-4-gabc1234", "v1.2.3-dirty+meta",
		"1.2.3-01", "abc1234-dirty", "v01.2.3", "1.2.3-", "1.2.3+", "1.2.3-a..b", "1.2.3-a_b", "vv1.2.3", "1.2.3-é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := ServiceVersion(v)
		if !semVer.MatchString(got) {
			t.Fatalf("ServiceVersion(%q) = %q, which micro refuses", v, got)
		}
		if got != "0.0.0-dev" && got != strings.TrimPrefix(v, "v") {
			t.Fatalf("ServiceVersion(%q) = %q, neither the version nor the fallback", v, got)
		}
		if again := ServiceVersion(got); again != got {
			t.Fatalf("ServiceVersion not idempotent: %q → %q → %q", v, got, again)
		}
	})
}

// TestEncodeNeverFails pins Encode's promise for the message types: even
// odd but decodable values marshal.
func TestEncodeNeverFails(t *testing.T) {
	at := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", 23*3600+59*60))
	for _, v := range []any{
		Heartbeat{Name: "b", PID: 1, Time: at, StartedAt: at, Stats: map[string]int64{"\xff": -1}},
		Status{Name: "b", StartedAt: &at, LastExit: &Exit{At: at}},
		Event{Time: at, Name: "b"},
	} {
		if b := Encode(v); bytes.Contains(b, []byte(`"encode: `)) {
			t.Errorf("Encode(%+v) = %s", v, b)
		}
	}
}
