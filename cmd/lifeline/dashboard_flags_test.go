package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus/bustest"
)

// wantOneLine checks r is a refusal with exit code, one line on stderr
// containing every one of wants, and nothing on stdout.
func wantOneLine(t *testing.T, what string, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d; stderr %q", what, r.code, code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "lifeline: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("%s: want one line on stderr, got %q", what, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("%s: stderr lacks %q: %q", what, w, r.stderr)
		}
	}
	if r.stdout != "" {
		t.Errorf("%s: stdout not empty: %q", what, r.stdout)
	}
}

// TestDashboardNATSCA: --nats-ca goes with --nats-url; without it the
// dashboard reaches its embedded bus in-process, so the flag is a mistake.
func TestDashboardNATSCA(t *testing.T) {
	clearEnv(t)
	cert, _ := bustest.SelfSigned(t)
	data := filepath.Join(t.TempDir(), "data")
	wantOneLine(t, "--nats-ca alone", runCLI(t, "dashboard", "--nats-ca", cert, "--data", data), exitUsage,
		"--nats-ca goes with --nats-url", "in-process", "see: lifeline dashboard --help")
	t.Setenv("LIFELINE_NATS_CA", cert)
	wantOneLine(t, "LIFELINE_NATS_CA alone", runCLI(t, "dashboard", "--data", data), exitUsage, "--nats-ca goes with --nats-url")
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data dir was made by a refused command line: %v", err)
	}

	c := &DashboardCommand{}
	if err := c.ParseFlags([]string{"--nats-url", "tls://nats.example:4222"}); err != nil || c.NATSCA != cert {
		t.Errorf("--nats-url with LIFELINE_NATS_CA: NATSCA %q, %v", c.NATSCA, err)
	}
	// A CA file that holds no certificate fails at start, saying which flag.
	t.Setenv("LIFELINE_NATS_CA", "")
	bad := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bad, []byte("not a certificate\n"), 0o644)
	wantOneLine(t, "bad CA file", runCLI(t, "dashboard", "--nats-url", "tls://127.0.0.1:1", "--nats-ca", bad, "--data", data),
		exitFailure, "--nats-ca", bad)
}

// TestDashboardViewerTokenRefused: --viewer-token (and
// LIFELINE_VIEWER_TOKEN) is checked like --token, and more strictly, before
// anything starts; no message shows it.
func TestDashboardViewerTokenRefused(t *testing.T) {
	clearEnv(t)
	data := filepath.Join(t.TempDir(), "data")
	operator := "operator-token-0123456789"
	for _, tc := range []struct {
		name, viewer, want string
		env                bool
	}{
		{"short", "short-viewer", "shorter than 16 characters", false},
		{"short from env", "short-viewer", "shorter than 16 characters", true},
		{"the access token", operator, "must differ from the access token", false},
		{"the access token from env", operator, "must differ from the access token", true},
		{"a space", "viewer token 0123456789", "printable ASCII without spaces", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"dashboard", "--token", operator, "--data", data}
			if tc.env {
				t.Setenv("LIFELINE_VIEWER_TOKEN", tc.viewer)
			} else {
				args = append(args, "--viewer-token", tc.viewer)
			}
			r := runCLI(t, args...)
			wantOneLine(t, tc.name, r, exitUsage, "--viewer-token", tc.want)
			if strings.Contains(r.stderr, tc.viewer) {
				t.Errorf("the message shows the token: %q", r.stderr)
			}
		})
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data dir was made by a refused command line: %v", err)
	}
}

// TestE2EDashboardViewerToken: the built binary takes the viewer token from
// LIFELINE_VIEWER_TOKEN: with it the API answers GETs and refuses every
// POST with 403, while the access token still commands; it writes no viewer
// token file, and neither its output nor its logs show the token.
func TestE2EDashboardViewerToken(t *testing.T) {
	dir := t.TempDir()
	const operator, viewer = "operator-e2e-token-0123456789", "viewer-e2e-token-9876543210"
	dash := e2eStart(t, "dashboard", dir, e2eEnv("LIFELINE_VIEWER_TOKEN="+viewer),
		"dashboard", "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--data", "data", "--token", operator, "--verbose")
	page := dash.waitOutput("page:", 15*time.Second)
	base := strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(page), "page:")), "/")
	if line := dash.waitOutput("view only:", 5*time.Second); !strings.Contains(line, "given with --viewer-token") {
		t.Errorf("banner: %q", line)
	}

	do := func(method, path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, p := range []string{"/api/session", "/api/bots", "/api/bot/status", "/api/events"} {
		if code, body := do("GET", p, viewer); code != http.StatusOK {
			t.Errorf("viewer GET %s: HTTP %d %s", p, code, body)
		}
	}
	if _, body := do("GET", "/api/session", viewer); !strings.Contains(body, `"role":"viewer"`) {
		t.Errorf("viewer session: %s", body)
	}
	for _, p := range []string{"/api/bot/restart", "/api/bots/bot/stop", "/api/bots/bot/start"} {
		if code, body := do("POST", p, viewer); code != http.StatusForbidden {
			t.Errorf("viewer POST %s: HTTP %d %s, want 403", p, code, body)
		}
	}
	// The access token gets past the guard: no agent answers, so 503.
	if code, body := do("POST", "/api/bot/restart", operator); code != http.StatusServiceUnavailable {
		t.Errorf("operator POST restart: HTTP %d %s, want 503", code, body)
	}
	if code, _ := do("GET", "/api/bots", "not-the-token-0123456789"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: HTTP %d, want 401", code)
	}

	dash.signal(syscall.SIGTERM)
	if code := dash.wait(15 * time.Second); code != 0 {
		t.Errorf("dashboard exit %d after SIGTERM", code)
	}
	if strings.Contains(dash.out.String(), viewer) {
		t.Errorf("the viewer token appears in the dashboard's output:\n%s", dash.out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "dashboard.viewer.token")); !os.IsNotExist(err) {
		t.Errorf("a viewer token file was written although one was given: %v", err)
	}
}
