package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

const (
	// MaxAge is how long a session cookie is good for.
	MaxAge = 30 * 24 * time.Hour
	// idBytes is the random part of a session cookie.
	idBytes = 16
)

// Keys derive everything a browser session needs from the token, so
// sessions survive a dashboard restart and die when the token changes, and
// the cookie never carries the token itself.
type Keys struct {
	tokenSum [sha256.Size]byte // compared in constant time, length-independent
	mac      []byte            // HMAC key for session cookies and CSRF tokens
	label    string            // signed into every session: "session" or "viewer session"
}

// NewKeys derives the operator's keys from the access token.
func NewKeys(token string) Keys {
	mac := sha256.Sum256([]byte("lifeline session key\x00" + token))
	return Keys{tokenSum: sha256.Sum256([]byte(token)), mac: mac[:], label: "session"}
}

// NewViewerKeys derives a viewer's keys from the viewer token. Both the key
// and the signed label differ from the operator's, so a viewer session can
// never pass for an operator session, even were the two tokens equal.
func NewViewerKeys(token string) Keys {
	mac := sha256.Sum256([]byte("lifeline viewer session key\x00" + token))
	return Keys{tokenSum: sha256.Sum256([]byte(token)), mac: mac[:], label: "viewer session"}
}

// TokenOK compares a presented token with the real one in constant time.
func (k Keys) TokenOK(presented string) bool {
	sum := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(sum[:], k.tokenSum[:]) == 1
}

func (k Keys) sign(parts ...string) string {
	h := hmac.New(sha256.New, k.mac)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// New returns a cookie value "v2.<id>.<unix issued>.<mac>". The
// random id lets one session be ended (logout) without ending the others.
func (k Keys) New(now time.Time) string {
	id := randomHex(idBytes)
	ts := strconv.FormatInt(now.Unix(), 10)
	return "v2." + id + "." + ts + "." + k.sign(k.label, id, ts)
}

// Parse checks a cookie value's MAC and age and returns its id and
// when it was issued (unix seconds). Whether it was ended since is the
// session table's to say.
func (k Keys) Parse(v string, now time.Time) (id string, issued int64, ok bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 4 || parts[0] != "v2" || len(parts[1]) != 2*idBytes {
		return "", 0, false
	}
	id, ts, mac := parts[1], parts[2], parts[3]
	want := k.sign(k.label, id, ts)
	if subtle.ConstantTimeCompare([]byte(mac), []byte(want)) != 1 {
		return "", 0, false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", 0, false
	}
	age := now.Sub(time.Unix(sec, 0))
	if age < -time.Minute || age >= MaxAge {
		return "", 0, false
	}
	return id, sec, true
}

// OK checks a cookie value's MAC and age.
func (k Keys) OK(v string, now time.Time) bool {
	_, _, ok := k.Parse(v, now)
	return ok
}

// LogoutToken is what a session must show to end itself: logging a browser
// out is a write, so it needs a token another site cannot know. It differs
// from the CSRF token, which a viewer never gets.
func (k Keys) LogoutToken(session string) string { return k.sign("logout", session) }

func (k Keys) LogoutOK(session, presented string) bool {
	return presented != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(k.LogoutToken(session))) == 1
}

// CSRF is the CSRF token that goes with a session cookie value.
func (k Keys) CSRF(session string) string { return k.sign("CSRF", session) }

func (k Keys) CSRFOK(session, presented string) bool {
	return presented != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(k.CSRF(session))) == 1
}

// randomHex returns n random bytes in hex. crypto/rand does not fail on the
// platforms Go supports (it crashes the program instead).
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
