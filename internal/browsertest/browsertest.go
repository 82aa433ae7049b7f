// Package browsertest starts the headless Chromium that the browser tests
// (cmd/lifeline's against a whole stack, dashboard's against an in-process
// dashboard) drive the page in through chromedp, the same way for all.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ExecPath finds Chromium. Without it the browser tests skip on a
// developer's machine, and fail in CI (CI=true), where .ci/run installs it.
func ExecPath(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "chromium not found (/usr/bin/chromium, or chromium or chromium-browser on PATH); " +
		"install it (Debian: apt-get install chromium) to run the browser tests"
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// Start starts a headless Chromium with a fresh profile and returns a
// context for it. It is stopped when the test ends, and cancelling waits
// for it to exit, so no chromedp goroutine outlives the test (goleak).
func Start(tb testing.TB) context.Context {
	tb.Helper()
	exe := ExecPath(tb)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// No network here and no need for any: keep Chromium from trying.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser and ties it to ctx, so it gets no
	// timeout of its own; go test's -timeout bounds a hang here.
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start chromium %s: %v", exe, err)
	}
	tb.Logf("chromium %s started in %s", exe, time.Since(start).Round(time.Millisecond))
	return ctx
}
