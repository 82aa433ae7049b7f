package session

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lifeline-dev/lifeline/dashboard/internal/atomicfile"
)

// File is the name, inside the data directory, of the file listing the browser
// sessions ended by a logout, so a restart does not bring them back.
const File = "dashboard.sessions"

// Bounds of the state behind browser logins.
const (
	// LinkTTL is how long a printed login link may be used (once).
	LinkTTL = 10 * time.Minute
	// maxLoginLinks bounds the links waiting to be used.
	maxLoginLinks = 1000
	// maxRevoked bounds the ended sessions remembered; past it every
	// session is ended at once, which keeps the promise of logout.
	maxRevoked = 4096
	// Live event streams: per browser session, per token given as Bearer
	// (scripts), and in all. A stream costs a goroutine and a few buffers,
	// since every stream shares one marshalled copy of each update: the
	// total leaves room for 1,000 watchers of a fleet and their tabs.
	MaxStreamsPerSession = 8
	MaxStreamsPerBearer  = 32
	MaxStreamsTotal      = 2048
)

// Store is what a signed cookie alone cannot carry: the sessions ended by
// logout, the one-time login links, and the live streams each session or
// token holds. The cookie's MAC key comes from the token, so a new token
// ends every older session without anything stored here.
type Store struct {
	log  *slog.Logger
	path string // dataDir/File

	mu        sync.Mutex
	notBefore int64            // sessions issued at or before this unix second are void
	revoked   map[string]int64 // ended session id -> unix second it would have expired
	links     map[string]loginLink
	streams   map[string]int
	allStream int
}

type loginLink struct {
	role    Role
	expires time.Time
}

// NewStore loads the ended sessions from dataDir. A file it cannot read
// ends every earlier session: refusing a browser beats letting a logged-out
// cookie back in.
func NewStore(dataDir string, log *slog.Logger, now time.Time) *Store {
	a := &Store{
		log:     log,
		path:    filepath.Join(dataDir, File),
		revoked: make(map[string]int64),
		links:   make(map[string]loginLink),
		streams: make(map[string]int),
	}
	stale, err := a.load(now)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		a.notBefore = now.Unix()
		log.Error("cannot read the ended sessions; every browser must log in again", "path", a.path, "err", err)
	case stale:
		if err := a.rewrite(); err != nil {
			log.Warn("cannot compact the ended sessions file", "path", a.path, "err", err)
		}
	}
	return a
}

// load reads the sessions file: "not-before <unix>" and "revoked <id>
// <unix expiry>" lines. Lines it does not understand are skipped; stale
// says whether some were (or had expired), so the file is worth rewriting.
func (a *Store) load(now time.Time) (stale bool, err error) {
	f, err := os.Open(a.path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 2 && fields[0] == "not-before":
			if n, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
				a.notBefore = max(a.notBefore, n)
				continue
			}
		case len(fields) == 3 && fields[0] == "revoked" && len(fields[1]) == 2*idBytes:
			if exp, err := strconv.ParseInt(fields[2], 10, 64); err == nil && exp > now.Unix() && len(a.revoked) < maxRevoked {
				a.revoked[fields[1]] = exp
				continue
			}
		}
		stale = true
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read ended sessions: %w", err)
	}
	return stale, nil
}

// rewrite writes the whole table to the file. Call with mu held or before
// the table is shared.
func (a *Store) rewrite() error {
	var b strings.Builder
	if a.notBefore != 0 {
		fmt.Fprintf(&b, "not-before %d\n", a.notBefore)
	}
	for id, exp := range a.revoked {
		fmt.Fprintf(&b, "revoked %s %d\n", id, exp)
	}
	if err := atomicfile.Write(a.path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write ended sessions: %w", err)
	}
	return nil
}

// Live reports whether the session id issued at issued (unix seconds) has
// not been ended.
func (a *Store) Live(id string, issued int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if issued <= a.notBefore {
		return false
	}
	_, ended := a.revoked[id]
	return !ended
}

// Revoke ends a session for good: in memory at once, and in the file so a
// restart keeps it ended. When too many are remembered, every session
// issued so far is ended instead.
func (a *Store) Revoke(id string, issued int64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp := time.Unix(issued, 0).Add(MaxAge).Unix()
	if len(a.revoked) >= maxRevoked {
		for k, e := range a.revoked {
			if e <= now.Unix() {
				delete(a.revoked, k)
			}
		}
	}
	if len(a.revoked) >= maxRevoked {
		a.notBefore = now.Unix()
		clear(a.revoked)
		a.log.Warn("too many logouts remembered; every browser session was ended", "max", maxRevoked)
		if err := a.rewrite(); err != nil {
			a.log.Error("cannot save the ended sessions; a restart would bring them back", "path", a.path, "err", err)
		}
		return
	}
	a.revoked[id] = exp
	if err := a.appendLine(fmt.Sprintf("revoked %s %d\n", id, exp)); err != nil {
		a.log.Error("cannot save an ended session; a restart would bring it back", "path", a.path, "err", err)
	}
}

func (a *Store) appendLine(line string) error {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open ended sessions: %w", err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("write ended sessions: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync ended sessions: %w", err)
	}
	return f.Close()
}

// NewLink returns the code of a login link for role r: random, good once,
// for LinkTTL. Codes live in memory only: a restart voids them, and
// the banner prints new ones.
func (a *Store) NewLink(r Role, now time.Time) (code string, expires time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.links) >= maxLoginLinks {
		for k, l := range a.links {
			if !now.Before(l.expires) {
				delete(a.links, k)
			}
		}
	}
	if len(a.links) >= maxLoginLinks {
		// Only the operator makes links; forgetting one beats growing.
		for k := range a.links {
			delete(a.links, k)
			break
		}
	}
	code = randomHex(32)
	expires = now.Add(LinkTTL)
	a.links[code] = loginLink{role: r, expires: expires}
	return code, expires
}

// UseLink spends a login link's code: the role it opens, or false when the
// code is unknown, used or expired.
func (a *Store) UseLink(code string, now time.Time) (Role, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.links[code]
	if !ok {
		return RoleNone, false
	}
	delete(a.links, code)
	if !now.Before(l.expires) {
		return RoleNone, false
	}
	return l.role, true
}

// OpenStream counts a live stream for key, or refuses it when key already
// holds limit of them or the dashboard MaxStreamsTotal.
func (a *Store) OpenStream(key string, limit int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.streams[key] >= limit || a.allStream >= MaxStreamsTotal {
		return false
	}
	a.streams[key]++
	a.allStream++
	return true
}

// CloseStream undoes an OpenStream that returned true.
func (a *Store) CloseStream(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allStream--
	if a.streams[key]--; a.streams[key] <= 0 {
		delete(a.streams, key)
	}
}
