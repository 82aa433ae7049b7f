package session

import (
	"log/slog"
	"testing"
	"time"
)

// TestLoginLinkExpires: a code is spent or stale after LinkTTL.
func TestLoginLinkExpires(t *testing.T) {
	a := NewStore(t.TempDir(), slog.New(slog.NewTextHandler(t.Output(), nil)), time.Now())
	now := time.Now()
	code, exp := a.NewLink(RoleOperator, now)
	if !exp.Equal(now.Add(LinkTTL)) {
		t.Errorf("expires %v", exp)
	}
	if _, ok := a.UseLink(code, now.Add(LinkTTL)); ok {
		t.Errorf("a link 10 minutes old still works")
	}
	code, _ = a.NewLink(RoleViewer, now)
	if r, ok := a.UseLink(code, now.Add(LinkTTL-time.Second)); !ok || r != RoleViewer {
		t.Errorf("a fresh viewer link: %v %v", r, ok)
	}
}

func TestSessionKeys(t *testing.T) {
	k := NewKeys("the-token-0123456789")
	now := time.Now()
	v := k.New(now)
	if !k.OK(v, now) {
		t.Fatal("fresh session refused")
	}
	if k.OK(v, now.Add(MaxAge)) {
		t.Error("expired session accepted")
	}
	if NewKeys("another-token-0123456").OK(v, now) {
		t.Error("session survived a token change")
	}
	for _, bad := range []string{"", "v1", "v1.1", "v1." + v[3:], v + "x"} {
		if k.OK(bad, now) {
			t.Errorf("session %q accepted", bad)
		}
	}
	if !k.CSRFOK(v, k.CSRF(v)) || k.CSRFOK(v, "") || k.CSRFOK(v, k.CSRF(k.New(now.Add(time.Second)))) {
		t.Error("CSRF check wrong")
	}
	if !k.TokenOK("the-token-0123456789") || k.TokenOK("the-token") || k.TokenOK("") {
		t.Error("token check wrong")
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter()
	now := time.Now()
	for range FreeFailures {
		if l.Wait("ip", now) != 0 {
			t.Fatal("limited before the free failures were used")
		}
		l.Fail("ip", now)
	}
	if l.Wait("ip", now) == 0 {
		t.Fatal("not limited after repeated failures")
	}
	if l.Wait("other", now) != 0 {
		t.Error("another address limited")
	}
	if l.Wait("ip", now.Add(maxLockout)) != 0 {
		t.Error("lockout longer than maxLockout")
	}
	l.Succeed("ip")
	if l.Wait("ip", now) != 0 {
		t.Error("limited after success")
	}
}

// TestStreamCountsFree: a closed stream gives its slot back.
func TestStreamCountsFree(t *testing.T) {
	a := NewStore(t.TempDir(), slog.New(slog.NewTextHandler(t.Output(), nil)), time.Now())
	for range MaxStreamsPerSession {
		if !a.OpenStream("s", MaxStreamsPerSession) {
			t.Fatal("refused under the limit")
		}
	}
	if a.OpenStream("s", MaxStreamsPerSession) {
		t.Fatal("accepted over the limit")
	}
	a.CloseStream("s")
	if !a.OpenStream("s", MaxStreamsPerSession) {
		t.Fatal("a freed slot was not given back")
	}
	for range MaxStreamsPerSession {
		a.CloseStream("s")
	}
	if len(a.streams) != 0 || a.allStream != 0 {
		t.Errorf("counts left behind: %v %d", a.streams, a.allStream)
	}
}
