package dashboard

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAlertServicesDocumented: every service the README and --help name
// takes its URL (alerts are sent through shoutrrr's service packages one by
// one, not its router), and services lifeline does not link are refused
// with ErrAlertURL, the supported ones named and the URL's secrets not.
func TestAlertServicesDocumented(t *testing.T) {
	for _, u := range []string{
		"generic+https://hooks.example.com/lifeline/T0KEN",
		"generic://hooks.example.com/lifeline/T0KEN",
		"slack://xoxb-123456789012-1234567890123-4pt99qFn9Y6J5bqbXbeTOGru@C01234567",
		"telegram://123:abc@telegram?chats=@ops",
		"discord://token@123456789",
		"teams://11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/33333301222222222233333333333344/44444444-4444-4444-8444-cccccccccccc/V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05?host=test.webhook.office.com",
		"smtp://user:pass@mail.example.com:587/?from=a@example.com&to=b@example.com",
		"ntfy://ntfy.sh/ops-topic",
		"gotify://gotify.example.com/Aaaaaaaaaaaaaaa",
	} {
		if err := (Config{Alerts: []string{u}}).Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{
		"zulip://bot@example.com:s3cret-key@example.zulipchat.com",
		"pushover://shoutrrr:s3cret-key@user/",
		"matrix://user:s3cret-key@matrix.example.com/",
		"nosuchservice://s3cret-key",
	} {
		err := (Config{Alerts: []string{u}}).Validate()
		if !errors.Is(err, ErrAlertURL) || strings.Contains(err.Error(), "s3cret-key") || !strings.Contains(err.Error(), alertServices) {
			t.Errorf("%s gives %v, want ErrAlertURL naming the supported services, without the secret", u, err)
		}
	}
	// A service that takes no custom URL (slack+https) and a URL the
	// service refuses are errors too, without the secret.
	for _, u := range []string{"slack+https://hooks.slack.com/services/s3cret-key", "ntfy://ntfy.sh/ops-topic?priority=s3cret-key"} {
		if err := (Config{Alerts: []string{u}}).Validate(); !errors.Is(err, ErrAlertURL) || strings.Contains(err.Error(), "s3cret-key") {
			t.Errorf("%s gives %v, want ErrAlertURL without the secret", u, err)
		}
	}
}

// TestAlertThroughNtfyAndGotify sends a test alert through services other
// than generic, to a real HTTP server standing for ntfy and Gotify (both
// read a JSON answer).
func TestAlertThroughNtfyAndGotify(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		got = append(got, req.URL.Path+" "+string(body))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":1}`)
	})}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	addr := ln.Addr().String()
	urls := []string{
		"ntfy://" + addr + "/ops-topic?scheme=http",
		"gotify://" + addr + "/Aaaaaaaaaaaaaaa?disabletls=yes",
	}
	if err := SendTestAlert(urls, "host-1", ""); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("the server got %d requests, want 2: %q", len(got), got)
	}
	for i, m := range got {
		if !strings.Contains(m, "test message") || !strings.Contains(m, "host-1") {
			t.Errorf("request %d: %q", i+1, m)
		}
	}
}

// TestAlertSendTimesOut: a service that takes the request and never
// answers does not hold the sender past its timeout (shoutrrr's generic
// service sets none of its own).
func TestAlertSendTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.ReadAll(req.Body)
		<-release
	})}
	wg.Go(func() { srv.Serve(ln) })
	t.Cleanup(func() {
		close(release)
		srv.Close()
		wg.Wait()
	})
	targets, err := newAlertTargets([]string{"generic+http://" + ln.Addr().String() + "/hook/s3cret-token"})
	if err != nil || len(targets) != 1 {
		t.Fatalf("newAlertTargets: %v", err)
	}
	tg := targets[0]
	tg.timeout = 200 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- tg.send("title", "body") }()
	select {
	case err := <-done:
		if !errors.Is(err, errAlertTimeout) || strings.Contains(err.Error(), "s3cret-token") {
			t.Errorf("send to a silent service gives %v, want errAlertTimeout without the secret", err)
		}
	case <-time.After(alertSendTimeout):
		t.Fatal("send to a silent service did not return")
	}
}

// TestReadmeAlertURLsAreValid: every alert URL the README shows is one that
// lifeline takes (its Slack example was once refused).
func TestReadmeAlertURLsAreValid(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, m := range regexp.MustCompile(`(?:--alert |LIFELINE_ALERT=')([^' \n]+)`).FindAllStringSubmatch(string(data), -1) {
		for _, u := range strings.Split(m[1], ",") {
			found++
			if err := (Config{Alerts: []string{u}}).Validate(); err != nil {
				t.Errorf("README's alert URL %s: %v", u, err)
			}
		}
	}
	if found < 3 {
		t.Fatalf("found %d alert URLs in the README, want its examples (3 or more)", found)
	}
}
