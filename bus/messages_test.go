package bus

import (
	"errors"
	"strings"
	"testing"
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
