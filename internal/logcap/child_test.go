package logcap

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the bot (and, for the kill -9 test, as an agent
// holding a Capture): real processes writing into real pipes.
func TestMain(m *testing.M) {
	switch os.Getenv("LOGCAP_CHILD") {
	case "":
	case "agent":
		runAgent()
		return
	default:
		runChild(os.Getenv("LOGCAP_CHILD"))
		os.Exit(0)
	}
	// lumberjack starts one goroutine per Logger that nothing stops.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// lineText is the n-th numbered line of a stream; its length varies with n
// so a cut or a join shows.
func lineText(stream string, n int) string {
	return fmt.Sprintf("%s %08d %s", stream, n, strings.Repeat("x", n%61))
}

// parseLine returns n for a whole line made by lineText, or -1.
func parseLine(stream, s string) int {
	f := strings.Split(s, " ")
	if len(f) != 3 || f[0] != stream {
		return -1
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || f[2] != strings.Repeat("x", n%61) {
		return -1
	}
	return n
}

func runChild(mode string) {
	n := envInt("LOGCAP_N", 1000)
	start := time.Now()
	switch mode {
	case "lines", "lines8k": // numbered lines as fast as possible: one write each, or 8 KiB writes as Python's print to a pipe does
		both := os.Getenv("LOGCAP_STREAMS") == "both"
		var out io.Writer = os.Stdout
		bw := bufio.NewWriterSize(os.Stdout, 8<<10)
		if mode == "lines8k" {
			out = bw
		}
		defer func() { report(start) }()
		defer bw.Flush()
		buf := make([]byte, 0, 256)
		for i := range n {
			buf = append(append(buf[:0], lineText("out", i)...), '\n')
			if _, err := out.Write(buf); err != nil {
				os.Exit(3)
			}
			if both {
				buf = append(append(buf[:0], lineText("err", i)...), '\n')
				os.Stderr.Write(buf)
			}
		}
		return // the deferred flush, then the report
	case "bulk": // 64 KiB writes of ready-made lines, like a buffered logger
		block := []byte(strings.Repeat(strings.Repeat("y", 63)+"\n", 1024))
		for range n {
			os.Stdout.Write(block)
		}
	case "paced": // "tick I UNIXNANO" every LOGCAP_EVERY_US microseconds, then "done"
		every := time.Duration(envInt("LOGCAP_EVERY_US", 1000)) * time.Microsecond
		for i := range n {
			if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
			if _, err := fmt.Fprintf(os.Stdout, "tick %d %d\n", i, time.Now().UnixNano()); err != nil {
				os.Exit(3)
			}
		}
		fmt.Println("done")
	case "long":
		text, _ := os.ReadFile(os.Getenv("LOGCAP_TEXT"))
		os.Stdout.Write(append(text, "\nend\n"...))
	}
	report(start)
}

// report tells the test how long the bot took to write, start-up excluded.
func report(start time.Time) {
	if p := os.Getenv("LOGCAP_REPORT"); p != "" {
		os.WriteFile(p, []byte(strconv.FormatInt(int64(time.Since(start)), 10)), 0o600)
	}
}

// botCmd runs this test binary as a bot; LOGCAP_* settings pass through
// the environment.
func botCmd(mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), "LOGCAP_CHILD="+mode), env...)
	return cmd
}

// readLines returns the lines of a file, without their newlines.
func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mustNew opens a Capture closed at the end of the test.
func mustNew(t testing.TB, cfg Config) *Capture {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runBot starts a bot on c's pipes and waits for it.
func runBot(t testing.TB, c *Capture, mode string, env ...string) {
	t.Helper()
	cmd := botCmd(mode, env...)
	cmd.Stdout, cmd.Stderr = c.Stdout(), c.Stderr()
	if err := cmd.Run(); err != nil {
		t.Fatalf("bot %s: %v", mode, err)
	}
}
