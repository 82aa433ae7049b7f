package dashboard

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Logs may hold secrets: a viewer, by Bearer token or by session cookie,
// gets 403 from both logs routes and none of the bot's output; a bad n is
// refused before any agent is asked.
func TestViewerCannotReadLogs(t *testing.T) {
	td := startDashboard(t)
	startFakeAgent(t, connect(t, td), "bot")
	viewer := td.ViewerAccessToken()
	r := call(t, http.MethodPost, td.base+"/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		strings.NewReader("token="+url.QueryEscape(viewer)))
	cookie := map[string]string{"Cookie": SessionCookie + "=" + sessionCookie(t, r)}
	for how, hdr := range map[string]map[string]string{
		"bearer": {"Authorization": "Bearer " + viewer},
		"cookie": cookie,
	} {
		for _, p := range []string{"/api/bots/bot/logs", "/api/bots/bot/logs?n=5", "/api/bots/bot/logs/stream"} {
			if r := call(t, http.MethodGet, td.base+p, hdr, nil); r.code != http.StatusForbidden || !strings.Contains(string(r.body), "secrets") {
				t.Errorf("viewer %s GET %s: HTTP %d %s", how, p, r.code, r.body)
			}
		}
	}
	op := map[string]string{"Authorization": "Bearer " + td.AccessToken()}
	for _, p := range []string{"/api/bots/bot/logs?n=-1", "/api/bots/bot/logs?n=1001", "/api/bots/bot/logs/stream?n=x", "/api/bots/b.d/logs"} {
		if r := call(t, http.MethodGet, td.base+p, op, nil); r.code != http.StatusBadRequest {
			t.Errorf("operator GET %s: HTTP %d %s, want 400", p, r.code, r.body)
		}
	}
}
