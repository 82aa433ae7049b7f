package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/lifeline-dev/lifeline/dashboard"
)

// alertFlag is --alert: repeatable, and from $LIFELINE_ALERT a comma list.
// Its String never shows a URL (they hold tokens), and Set never fails, as
// the flag package would print the value in its error: the URLs are checked
// by dashboard.Config.Validate, which names them by position only.
type alertFlag []string

func (a *alertFlag) String() string {
	if a == nil || len(*a) == 0 {
		return ""
	}
	out := make([]string, len(*a))
	for i, u := range *a {
		scheme, _, _ := strings.Cut(u, "://")
		out[i] = scheme + "://" + redacted
	}
	return strings.Join(out, ",")
}

// Set adds one URL, or several separated by commas; a comma not followed
// by scheme:// belongs to the URL before it (telegram's chats=a,b).
func (a *alertFlag) Set(v string) error {
	var cur string
	for part := range strings.SplitSeq(v, ",") {
		if cur != "" && !looksLikeURL(part) {
			cur += "," + part
			continue
		}
		if strings.TrimSpace(cur) != "" {
			*a = append(*a, strings.TrimSpace(cur))
		}
		cur = part
	}
	if strings.TrimSpace(cur) != "" {
		*a = append(*a, strings.TrimSpace(cur))
	}
	return nil
}

func looksLikeURL(s string) bool {
	scheme, _, ok := strings.Cut(strings.TrimSpace(s), "://")
	return ok && scheme != "" && !strings.ContainsAny(scheme, " =&?/")
}

// alertURLs returns --alert's URLs and those of --alert-file.
func (c *DashboardCommand) alertURLs() ([]string, error) {
	urls := append([]string(nil), c.Alerts...)
	if c.AlertFile == "" {
		return urls, nil
	}
	f, err := os.Open(c.AlertFile)
	if err != nil {
		return nil, advise(fmt.Errorf("--alert-file: %w", err), "give a file of alert URLs, one a line")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			urls = append(urls, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read --alert-file: %w", err)
	}
	return urls, nil
}

// alertTest is --alert-test: one message to each URL, then exit.
func (c *DashboardCommand) alertTest(urls []string) error {
	if len(urls) == 0 {
		return usageErr("dashboard", errors.New("--alert-test needs --alert URL, --alert-file or $LIFELINE_ALERT"))
	}
	host, _ := os.Hostname()
	if err := dashboard.SendTestAlert(urls, host, c.PublicURL); err != nil {
		return advise(fmt.Errorf("alert test: %w", err), "check the alert URLs and that their services are reachable")
	}
	fmt.Fprintf(c.env.stdout, "sent a test alert to %d URL(s)\n", len(urls))
	return nil
}
