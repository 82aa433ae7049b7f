package bus

import (
	"strings"
	"testing"
)

func TestServiceVersion(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "0.0.0-dev",
		"dev":               "0.0.0-dev",
		"1.2":               "0.0.0-dev",
		"v1.2.3":            "1.2.3",
		"1.2.3":             "1.2.3",
		"v1.2.3-4-gabc1234": "1.2.3-4-gabc1234",
		"v1.2.3-dirty+meta": "1.2.3-dirty+meta",
		"1.2.3-01":          "0.0.0-dev",
		"abc1234-dirty":     "0.0.0-dev",
		"v01.2.3":           "0.0.0-dev",
	} {
		if got := ServiceVersion(in); got != want {
			t.Errorf("ServiceVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"bot", "a", "my-bot_2", strings.Repeat("x", 64)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a b", "*", ">", "bot\n", "é", strings.Repeat("x", 65)} {
		if err := ValidName(bad); err == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
}

func TestNameFromSubject(t *testing.T) {
	for subject, want := range map[string]string{
		"lifeline.bot.b1.heartbeat":  "b1",
		"lifeline.agent.b-2.status":  "b-2",
		"lifeline.events.x_y":        "x_y",
		"lifeline.bot.a.b.heartbeat": "",
		"lifeline.events":            "",
		"other.bot.b1.heartbeat":     "",
		"lifeline.bot.b1.HB":         "",
	} {
		if got := NameFromSubject(subject); got != want {
			t.Errorf("NameFromSubject(%q) = %q, want %q", subject, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	in := "nats://alice:s3cret@a:4222, nats://b:4222,tls://bob:pw@c:4222"
	got := Redact(in)
	if strings.Contains(got, "s3cret") || strings.Contains(got, "pw@") || !strings.Contains(got, "alice:xxxxx@a:4222") || !strings.Contains(got, "nats://b:4222") {
		t.Fatalf("Redact(%q) = %q", in, got)
	}
}
