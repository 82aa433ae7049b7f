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

// User is one bus account.
type User struct {
	Name     string
	Password string
	Role     Role
	Bot      string // for RoleAgent and RoleBot: the bot's name
}

// ErrNoCredentials refuses a bus that would listen beyond loopback with
// nobody required to log in.
var ErrNoCredentials = errors.New("the bus listens beyond loopback but has no users; give it some with --nats-users FILE")

// Permissions returns the NATS permissions of role; bot names the one bot an
// agent or bot account serves.
func Permissions(role Role, bot string) (*server.Permissions, error) {
	allow := func(pub, sub []string) *server.Permissions {
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pub},
			Subscribe: &server.SubjectPermission{Allow: sub},
			// Replies to requests (micro endpoints, shutdown) go to the
			// requester's inbox, whatever its name.
			Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
		}
	}
	// Discovery and request/reply need these whatever the role; reading the
	// JetStream API lets `nats stream ls` and history work, not change them.
	// No role but admin (the dashboards) may publish on HistoryWildcard:
	// history holds only what a dashboard received as an event.
	srv := []string{"$SRV.>"}
	jsRead := []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.*",
		"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>"}
	inbox := []string{"_INBOX.>"}
	switch role {
	case RoleAdmin:
		return nil, nil // no restrictions
	case RoleOperator:
		return allow(
			cat(srv, jsRead, []string{"lifeline.agent.*.status", "lifeline.agent.*.restart", "lifeline.agent.*.stop", "lifeline.agent.*.start"}),
			cat(inbox, []string{"lifeline.bot.*.heartbeat", "lifeline.events.*"}),
		), nil
	case RoleViewer:
		return allow(
			cat(srv, jsRead, []string{"lifeline.agent.*.status"}),
			cat(inbox, []string{"lifeline.bot.*.heartbeat", "lifeline.events.*"}),
		), nil
	case RoleAgent, RoleBot:
		if err := ValidName(bot); err != nil {
			return nil, fmt.Errorf("%s account: %w", role, err)
		}
		if role == RoleAgent {
			return allow(
				cat(srv, []string{EventsSubject(bot), ShutdownSubject(bot), AgentSubject(bot, OpStatus), HeartbeatSubject(bot)}),
				cat(srv, inbox, []string{"lifeline.agent." + bot + ".*", HeartbeatSubject(bot), ShutdownSubject(bot)}),
			), nil
		}
		return allow(
			cat(srv, []string{HeartbeatSubject(bot)}),
			cat(srv, inbox, []string{ShutdownSubject(bot)}),
		), nil
	}
	return nil, fmt.Errorf("unknown role %q (want admin, operator, viewer, agent or bot)", role)
}

func cat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// ReadUsers reads a users file: one account per line, "ROLE USER PASSWORD
// [BOT]", blank lines and # comments ignored. For example:
//
//	operator alice  correct-horse-battery
//	viewer   wall   staple-horse-correct
//	agent    bot-a  another-long-secret  bot
func ReadUsers(path string) ([]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	defer f.Close()
	var users []User
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("%s:%d: want ROLE USER PASSWORD [BOT]", path, n)
		}
		u := User{Role: Role(f[0]), Name: f[1], Password: f[2]}
		if len(f) == 4 {
			u.Bot = f[3]
		}
		if (u.Role == RoleAgent || u.Role == RoleBot) && u.Bot == "" {
			return nil, fmt.Errorf("%s:%d: an %s account names its bot: %s USER PASSWORD BOT", path, n, u.Role, u.Role)
		}
		if len(u.Password) < 12 {
			return nil, fmt.Errorf("%s:%d: password of %s is shorter than 12 characters", path, n, u.Name)
		}
		if _, err := Permissions(u.Role, u.Bot); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	return users, nil
}

// isLoopback reports whether host (from a listen address) accepts only
// local connections.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
