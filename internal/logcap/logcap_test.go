package logcap

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// closeAndRead closes c (taking in what the pipes still hold) and returns
// the lines of its current log file.
func closeAndRead(t *testing.T, c *Capture, path string) []string {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	return readLines(t, path)
}

func TestStreamsCapturedInOrderAndApart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.log")
	const n = 3000
	c := mustNew(t, Config{Path: path, RingLines: 2 * n})
	runBot(t, c, "lines", "LOGCAP_N="+strconv.Itoa(n), "LOGCAP_STREAMS=both")
	waitFor(t, 5*time.Second, "all lines in the tail", func() bool { return len(c.Tail(4*n)) == 2*n })

	next := map[string]int{}
	var lastSeq uint64
	for _, l := range c.Tail(4 * n) {
		if l.Seq <= lastSeq {
			t.Fatalf("tail out of order: seq %d after %d", l.Seq, lastSeq)
		}
		lastSeq = l.Seq
		want := map[string]string{StreamStdout: "out", StreamStderr: "err"}[l.Stream]
		if got := parseLine(want, l.Text); got != next[l.Stream] {
			t.Fatalf("%s: got line %q, want number %d", l.Stream, l.Text, next[l.Stream])
		}
		next[l.Stream]++
	}
	// The file holds both streams, each whole and in its own order.
	next = map[string]int{}
	for _, s := range closeAndRead(t, c, path) {
		stream := s[:3]
		if got := parseLine(stream, s); got != next[stream] {
			t.Fatalf("file: got line %q, want %s number %d", s, stream, next[stream])
		}
		next[stream]++
	}
	if next["out"] != n || next["err"] != n {
		t.Fatalf("file has %d stdout and %d stderr lines, want %d each", next["out"], next["err"], n)
	}
	if got := c.Tail(3); len(got) != 3 || got[2].Seq != lastSeq {
		t.Fatalf("Tail(3) = %v, want the last three lines", got)
	}
}

// logFiles returns the current log and its rotated copies, oldest first.
func logFiles(t *testing.T, dir string) (backups []string, current string) {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "bot-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m) // names carry the rotation time
	return m, filepath.Join(dir, "bot.log")
}

// checkRotated reads every file in order and checks each line is whole,
// each file within maxSize and private; it returns the numbers seen.
func checkRotated(t *testing.T, files []string, maxSize int64) []int {
	t.Helper()
	var nums []int
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxSize {
			t.Errorf("%s is %d bytes, over %d", f, fi.Size(), maxSize)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
		for _, s := range readLines(t, f) {
			n := parseLine("out", s)
			if n < 0 {
				t.Fatalf("%s: line %q is not whole", f, s)
			}
			nums = append(nums, n)
		}
	}
	return nums
}

func TestRotationSplitsNoLineAndLosesNone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bot.log")
	const n, maxSize = 40000, 64 << 10 // ~1.7 MB: some 26 rotations
	c := mustNew(t, Config{Path: path, MaxSize: maxSize, Keep: 1000})
	runBot(t, c, "lines", "LOGCAP_N="+strconv.Itoa(n))
	closeAndRead(t, c, path)
	backups, current := logFiles(t, dir)
	if len(backups) < 20 {
		t.Fatalf("%d rotations, want at least 20", len(backups))
	}
	nums := checkRotated(t, append(backups, current), maxSize)
	for i, got := range nums {
		if got != i {
			t.Fatalf("line %d of all files is number %d: a line was lost or repeated", i, got)
		}
	}
	if len(nums) != n {
		t.Fatalf("%d lines in all files, want %d", len(nums), n)
	}
}

func TestRotationKeepsKeepFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bot.log")
	const n, maxSize, keep = 20000, 32 << 10, 3
	c := mustNew(t, Config{Path: path, MaxSize: maxSize, Keep: keep})
	runBot(t, c, "lines", "LOGCAP_N="+strconv.Itoa(n))
	closeAndRead(t, c, path)
	// The library removes old files in its own goroutine, after rotating.
	waitFor(t, 5*time.Second, "old files removed", func() bool {
		b, _ := logFiles(t, dir)
		return len(b) == keep
	})
	backups, current := logFiles(t, dir)
	nums := checkRotated(t, append(backups, current), maxSize)
	// What is kept is the newest output, without a gap, up to the last line.
	for i := range nums {
		if nums[i] != n-len(nums)+i {
			t.Fatalf("kept files hold %d..%d with a gap at %d", nums[0], nums[len(nums)-1], i)
		}
	}
}

var stampRE = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)$`)

func TestTimestampsOnlyWhenAsked(t *testing.T) {
	for _, stamps := range []bool{false, true} {
		t.Run("timestamps="+strconv.FormatBool(stamps), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bot.log")
			c := mustNew(t, Config{Path: path, Timestamps: stamps})
			before := time.Now().Add(-time.Millisecond)
			runBot(t, c, "lines", "LOGCAP_N=200")
			lines := closeAndRead(t, c, path)
			if len(lines) != 200 {
				t.Fatalf("%d lines, want 200", len(lines))
			}
			for i, s := range lines {
				if !stamps {
					if s != lineText("out", i) { // the bot's output, byte for byte
						t.Fatalf("line %d = %q, want %q", i, s, lineText("out", i))
					}
					continue
				}
				m := stampRE.FindStringSubmatch(s)
				if m == nil || m[2] != lineText("out", i) {
					t.Fatalf("line %d = %q, want an RFC 3339 millisecond stamp and %q", i, s, lineText("out", i))
				}
				ts, err := time.Parse(time.RFC3339, m[1])
				if err != nil || ts.Before(before) || ts.After(time.Now()) {
					t.Fatalf("line %d: stamp %s not the time it was written (%v)", i, m[1], err)
				}
			}
		})
	}
}

func TestLongLineIsCutIntoMarkedPieces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.log")
	c := mustNew(t, Config{Path: path})
	// Three-byte runes straddle every cut point: no piece may end mid-rune.
	long := strings.Repeat("€a", 3*MaxLine/4+100) // ~300 KiB
	text := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(text, []byte(long), 0o600); err != nil {
		t.Fatal(err)
	}
	runBot(t, c, "long", "LOGCAP_TEXT="+text)
	waitFor(t, 5*time.Second, "end line", func() bool {
		tl := c.Tail(1)
		return len(tl) == 1 && tl[0].Text == "end"
	})
	var joined strings.Builder
	pieces := c.Tail(100)
	pieces = pieces[:len(pieces)-1]
	if len(pieces) < 4 {
		t.Fatalf("%d pieces, want at least 4", len(pieces))
	}
	for i, p := range pieces {
		if p.Cut != (i < len(pieces)-1) {
			t.Fatalf("piece %d: Cut = %v", i, p.Cut)
		}
		if len(p.Text) > MaxLine || !utf8.ValidString(p.Text) {
			t.Fatalf("piece %d: %d bytes, valid UTF-8 %v", i, len(p.Text), utf8.ValidString(p.Text))
		}
		joined.WriteString(p.Text)
	}
	if joined.String() != long {
		t.Fatal("pieces do not join to the line written")
	}
	lines := closeAndRead(t, c, path)
	joined.Reset()
	for i, s := range lines[:len(lines)-1] {
		if i < len(lines)-2 {
			s = strings.TrimSuffix(s, contMark)
		}
		joined.WriteString(s)
	}
	if joined.String() != long || lines[len(lines)-1] != "end" {
		t.Fatal("the file's pieces, marks taken off, do not join to the line written")
	}
}

// childSeconds runs a bot writing n lines and returns its own measure of
// how long writing took.
func childSeconds(t testing.TB, c *Capture, mode string, n int) float64 {
	t.Helper()
	report := filepath.Join(t.TempDir(), "report")
	ns, _ := strconv.ParseInt(runForReport(t, c, botCmd(mode, "LOGCAP_N="+strconv.Itoa(n), "LOGCAP_REPORT="+report), report), 10, 64)
	return time.Duration(ns).Seconds()
}

// runForReport runs a bot with its output in c's pipes, or in /dev/null
// when c is nil, and returns what it wrote to its report file: the bots time
// their own writing, which is what capture must not slow down.
func runForReport(t testing.TB, c *Capture, cmd *exec.Cmd, report string) string {
	t.Helper()
	if c != nil {
		cmd.Stdout, cmd.Stderr = c.Stdout(), c.Stderr()
	} else {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		cmd.Stdout, cmd.Stderr = null, null
	}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSlowFollowerDoesNotSlowTheBot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.log")
	const n = 50000
	c := mustNew(t, Config{Path: path})
	free := mustNew(t, Config{Path: filepath.Join(t.TempDir(), "bot.log")})
	stuck := c.Follow(t.Context()) // never read while the bots run
	// Runs with and without, interleaved: the machine is shared and noisy.
	alone := childSeconds(t, free, "lines", n)
	followed := childSeconds(t, c, "lines", n)
	followed += childSeconds(t, c, "lines", n)
	alone += childSeconds(t, free, "lines", n)
	t.Logf("bot writing %d lines: %.0f ms alone, %.0f ms with a follower that never reads", n, alone/2*1e3, followed/2*1e3)
	// Sends to followers never block; what is left is the machine's noise.
	if followed > 1.5*alone+0.2 {
		t.Fatalf("a stuck follower slowed the bot from %.3fs to %.3fs", alone/2, followed/2)
	}
	waitFor(t, 5*time.Second, "all lines taken in", func() bool {
		tl := c.Tail(1)
		return len(tl) == 1 && tl[0].Text == lineText("out", n-1)
	})
	for range FollowBuffer {
		<-stuck
	}
	// The next line it gets is preceded by how many it missed.
	if _, err := c.Stdout().WriteString("after\n"); err != nil {
		t.Fatal(err)
	}
	m, l := <-stuck, <-stuck
	if skipped := 2*n - FollowBuffer; m.Stream != StreamLifeline || m.Skipped != skipped || m.Text != strconv.Itoa(skipped)+" lines skipped" {
		t.Fatalf("marker = %+v, want %d lines skipped", m, skipped)
	}
	if l.Text != "after" {
		t.Fatalf("line after the marker = %+v", l)
	}
	if got := len(closeAndRead(t, c, path)); got != 2*n+1 {
		t.Fatalf("file has %d lines, want %d: a follower cost the file lines", got, 2*n+1)
	}
	if _, ok := <-stuck; ok {
		t.Fatal("follower channel still open after Close")
	}
}

func TestFollowEndsWithContext(t *testing.T) {
	c := mustNew(t, Config{Path: filepath.Join(t.TempDir(), "bot.log")})
	ctx, cancel := context.WithCancel(t.Context())
	ch := c.Follow(ctx)
	c.Stdout().WriteString("one\n")
	if l := <-ch; l.Text != "one" || l.Stream != StreamStdout {
		t.Fatalf("got %+v", l)
	}
	cancel()
	waitFor(t, 2*time.Second, "channel closed", func() bool {
		select {
		case _, ok := <-ch:
			return !ok
		default:
			return false
		}
	})
}

// percentile returns the p-th percentile of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// tailLatencies runs a bot writing 10,000 lines a second for a second and
// returns, sorted, how long each took from its write to a follower.
func tailLatencies(t testing.TB) []time.Duration {
	c := mustNew(t, Config{Path: filepath.Join(t.TempDir(), "bot.log")})
	ch := c.Follow(t.Context())
	const n = 10000
	done := make(chan []time.Duration)
	go func() {
		var lat []time.Duration
		for l := range ch {
			f := strings.Fields(l.Text)
			if len(f) != 3 {
				break // "done"
			}
			sent, _ := strconv.ParseInt(f[2], 10, 64)
			lat = append(lat, time.Since(time.Unix(0, sent)))
		}
		done <- lat
	}()
	runBot(t, c, "paced", "LOGCAP_N="+strconv.Itoa(n), "LOGCAP_EVERY_US=100")
	lat := <-done
	if len(lat) != n {
		t.Fatalf("follower got %d lines of %d", len(lat), n)
	}
	slices.Sort(lat)
	return lat
}

// TestFollowerGetsEveryPacedLine: a follower of a bot writing 10,000 lines a
// second gets every line. How late they come is BenchmarkTailLatency's.
func TestFollowerGetsEveryPacedLine(t *testing.T) {
	lat := tailLatencies(t)
	t.Logf("write to follower at 10,000 lines/s: p50 %v, p99 %v, max %v", percentile(lat, 0.5), percentile(lat, 0.99), lat[len(lat)-1])
}

func TestLastLines(t *testing.T) {
	var b []byte
	for i := range 500 {
		b = append(b, strings.Repeat("x", (i*7919)%300)+"\n"...)
	}
	for _, k := range []int{1, 2, 17, 250, 498, 499} {
		want := len(b) - 1
		for range k {
			want = bytes.LastIndexByte(b[:want], '\n')
		}
		if got := lastLines(b, 500, k); got != want+1 {
			t.Fatalf("lastLines(k=%d) = %d, want %d", k, got, want+1)
		}
	}
}
