package bus

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Role is what a bus user may do. The server enforces it with NATS
// permissions, so a viewer's restart request is refused by the bus itself.
type Role string

// Roles, from most to least powerful.
const (
	// RoleAdmin may do anything; the dashboards use it among themselves.
	RoleAdmin Role = "admin"
	// RoleOperator may watch every bot and restart, stop and start them.
	RoleOperator Role = "operator"
	// RoleViewer may only watch: heartbeats, events, status and discovery.
	RoleViewer Role = "viewer"
	// RoleAgent may supervise one bot (User.Bot) and nothing else. It may
	// also act as that bot, so the demo bot it starts can share its login.
	RoleAgent Role = "agent"
	// RoleBot may be one bot (User.Bot): publish its heartbeats, answer its
	// shutdown requests.
	RoleBot Role = "bot"
)

// User is one bus account: a password login or an nkey login.
type User struct {
	// Name is the login's name, and so its inbox name (InboxPrefix): no
	// other login may read replies sent there.
	Name string
	// Password, for a password login.
	Password string
	// NKey is the public key ("U...") of an nkey login; its holder proves
	// the seed by signing the server's challenge, and no secret crosses
	// the wire. An nkey login may also receive replies below
	// InboxPrefix(NKey), for seeds that carry no login name.
	NKey string
	Role Role
	// Bot is the one bot an agent or bot login serves, or "*" for any bot
	// (the bus directory's shared agent and bot logins).
	Bot string
}

// ErrNoCredentials refuses a bus that would listen beyond loopback with
// nobody required to log in.
var ErrNoCredentials = errors.New("the bus listens beyond loopback but has no users")

// ErrNoRouteCredentials refuses a cluster port beyond loopback that would
// take any server as a route.
var ErrNoRouteCredentials = errors.New("the cluster listens beyond loopback but has no route credentials")

// MaxAgentBots is how many replies one agent connection may send to one
// request: one per bot it supervises, as each bot's service answers
// discovery ($SRV.INFO) on its own.
const MaxAgentBots = 10000

// Permissions returns the NATS permissions of user u. Each role may
// subscribe only to what its work needs, and replies reach only the inbox
// of the login that asked.
func Permissions(u User) (*server.Permissions, error) {
	if u.Role == RoleAdmin {
		return nil, nil // the dashboards' own in-process login
	}
	if !validToken(u.Name, 64) {
		return nil, fmt.Errorf("login name %q: want 1-64 of A-Z a-z 0-9 _ -", u.Name)
	}
	inbox := []string{InboxPrefix(u.Name) + ".>"}
	if u.NKey != "" {
		inbox = append(inbox, InboxPrefix(u.NKey)+".>")
	}
	allowN := func(replies int, pub, sub []string) *server.Permissions {
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pub},
			Subscribe: &server.SubjectPermission{Allow: sub},
			// A responder may answer a request it received, once per
			// service it runs, to the reply subject the requester chose:
			// that is how micro endpoints, discovery and shutdown reply.
			Response: &server.ResponsePermission{MaxMsgs: replies, Expires: time.Minute},
		}
	}
	allow := func(pub, sub []string) *server.Permissions { return allowN(1, pub, sub) }
	// Asking for discovery ($SRV.PING|INFO|STATS[.name[.id]]) is open to
	// all; answering it is scoped per service below, so no login can pose
	// as another role's service. Reading the JetStream API lets `nats
	// stream ls` and the history work, not change them; only the dashboards
	// (admin) write history.
	ask := []string{"$SRV.>"}
	jsRead := []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.*",
		"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>"}
	answer := func(service string) []string {
		return []string{"$SRV.PING", "$SRV.INFO", "$SRV.STATS",
			"$SRV.*." + service, "$SRV.*." + service + ".*"}
	}
	watch := []string{HeartbeatWildcard, EventsWildcard}
	switch u.Role {
	case RoleOperator:
		return allow(
			cat(ask, jsRead, []string{"lifeline.agent.*.status", "lifeline.agent.*.restart", "lifeline.agent.*.stop", "lifeline.agent.*.start",
				// Logs may hold secrets: operators and the dashboards read
				// them, viewers, agents and bots do not.
				"lifeline.agent.*." + OpLogs, "lifeline.agent.*." + OpLogsFollow}),
			cat(inbox, watch),
		), nil
	case RoleViewer:
		return allow(
			cat(ask, jsRead, []string{"lifeline.agent.*.status"}),
			cat(inbox, watch),
		), nil
	case RoleAgent, RoleBot:
		bot := u.Bot
		if bot != "*" {
			if err := ValidName(bot); err != nil {
				return nil, fmt.Errorf("%s account: %w", u.Role, err)
			}
		}
		if u.Role == RoleAgent {
			// An agent may also be its bot, so the demo bot it starts can
			// share its login when the accounts have no bot login. One
			// agent process may supervise many bots (--config), each with
			// its own service on the one connection: each answers discovery.
			return allowN(MaxAgentBots,
				cat(ask, []string{EventsSubject(bot), ShutdownSubject(bot), AgentSubject(bot, OpStatus), HeartbeatSubject(bot)}),
				cat(inbox, answer(AgentService), answer(BotService),
					[]string{"lifeline.agent." + bot + ".*", HeartbeatSubject(bot), ShutdownSubject(bot)}),
			), nil
		}
		return allow(
			cat(ask, []string{HeartbeatSubject(bot)}),
			cat(inbox, answer(BotService), []string{ShutdownSubject(bot)}),
		), nil
	}
	return nil, fmt.Errorf("unknown role %q (want admin, operator, viewer, agent or bot)", u.Role)
}

func cat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// ReadUsers reads a users file: one account per line, blank lines and #
// comments ignored. A line is "ROLE USER PASSWORD [BOT]" for a password
// login, or "ROLE USER NKEY [BOT]" for an nkey login, NKEY being the user's
// public key ("U...", from `nk -gen user -pubout`). For example:
//
//	operator alice  correct-horse-battery
//	viewer   wall   UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4
//	agent    bot-a  another-long-secret  bot
func ReadUsers(path string) ([]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	defer f.Close()
	var users []User
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || len(f) > 4 {
			return nil, &UsersError{Path: path, Line: n, Err: ErrUsersLine}
		}
		u := User{Role: Role(f[0]), Name: f[1]}
		if nkeys.IsValidPublicUserKey(f[2]) {
			u.NKey = f[2]
		} else {
			u.Password = f[2]
		}
		if len(f) == 4 {
			u.Bot = f[3]
		}
		switch {
		case u.Role == RoleAdmin:
			return nil, &UsersError{Path: path, Line: n, Err: errors.New("role admin is the dashboards' own; give people operator")}
		case (u.Role == RoleAgent || u.Role == RoleBot) && u.Bot == "":
			return nil, &UsersError{Path: path, Line: n, Err: fmt.Errorf("an %s account names its bot: %s USER PASSWORD|NKEY BOT", u.Role, u.Role)}
		case u.NKey == "" && len(u.Password) < 12:
			return nil, &UsersError{Path: path, Line: n, Err: fmt.Errorf("password of %s is shorter than 12 characters", u.Name)}
		case u.Name == DashboardLogin:
			return nil, &UsersError{Path: path, Line: n, Err: fmt.Errorf("user name %s is the dashboards' own", DashboardLogin)}
		case seen[u.Name]:
			return nil, &UsersError{Path: path, Line: n, Err: fmt.Errorf("user %s is listed twice", u.Name)}
		}
		seen[u.Name] = true
		if _, err := Permissions(u); err != nil {
			return nil, &UsersError{Path: path, Line: n, Err: err}
		}
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	return users, nil
}

// ErrUsersLine is a users-file line of the wrong shape.
var ErrUsersLine = errors.New("want ROLE USER PASSWORD|NKEY [BOT]")

// UsersError is a bad line of a users file.
type UsersError struct {
	Path string
	Line int
	Err  error
}

func (e *UsersError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err) }
func (e *UsersError) Unwrap() error { return e.Err }

// isLoopback reports whether host (from a listen address) accepts only
// local connections.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
