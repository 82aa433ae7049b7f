// Package session holds what the dashboard's web login rests on: the keys
// that sign browser session cookies, CSRF and logout tokens (Keys), the
// sessions ended by logout, one-time login links and live-stream counts
// (Store), and the throttle on wrong tokens (Limiter). It knows nothing of
// HTTP: the dashboard's handlers read cookies and headers and ask it.
package session

// Role says what a request may do: an operator everything, a viewer (who
// knows only the viewer token) read but never command.
type Role int

// The roles; RoleNone is a request that proved nothing.
const (
	RoleNone Role = iota
	RoleOperator
	RoleViewer
)

func (r Role) String() string {
	switch r {
	case RoleOperator:
		return "operator"
	case RoleViewer:
		return "viewer"
	}
	return "none"
}
