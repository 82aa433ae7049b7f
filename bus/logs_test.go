package bus

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeLogsRequest(t *testing.T) {
	for body, want := range map[string]int{"": DefaultLogLines, " ": DefaultLogLines, `{}`: 0, `{"n":5}`: 5, `{"n":1000}`: 1000} {
		r, err := DecodeLogsRequest([]byte(body))
		if err != nil || r.N != want {
			t.Errorf("%q: %+v %v, want n %d", body, r, err, want)
		}
	}
	for _, body := range []string{`{"n":-1}`, `{"n":1001}`, `{"n":"5"}`, `[]`, `null`, `{"x":1}`, `{"n":1}{}`, `{"n":` + strings.Repeat("9", 5000) + `}`} {
		if _, err := DecodeLogsRequest([]byte(body)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%.40q: %v, want ErrBadRequest", body, err)
		}
	}
}

// A reply never exceeds MaxLogsBytes: the oldest lines go, counted, even
// when escaping inflates every byte of them.
func TestEncodeLogsCapped(t *testing.T) {
	for _, text := range []string{strings.Repeat("x", 60<<10), strings.Repeat("\x01", 60<<10), strings.Repeat("<", 60<<10)} {
		var lines []LogLine
		for i := range 1000 {
			lines = append(lines, LogLine{Stream: StreamStdout, Text: text, Seq: uint64(i + 1)})
		}
		data := EncodeLogs(LogsReply{OK: true, Lines: lines})
		if len(data) > MaxLogsBytes {
			t.Fatalf("reply of %d bytes", len(data))
		}
		r, err := DecodeLogsReply(data)
		if err != nil || !r.OK || len(r.Lines) == 0 || r.Omitted+len(r.Lines) != 1000 || r.Lines[len(r.Lines)-1].Seq != 1000 {
			t.Fatalf("decoded %d lines, %d omitted, %v", len(r.Lines), r.Omitted, err)
		}
	}
	if got := string(EncodeLogs(LogsReply{OK: true})); got != `{"ok":true,"lines":[]}` {
		t.Errorf("empty reply %s", got)
	}
}
