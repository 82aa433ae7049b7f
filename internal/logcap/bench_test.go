package logcap

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchLines is how many lines the "lines" bot writes per run (~2.3 MB).
const benchLines = 50000

func linesBytes(n int) int64 {
	var b int64
	for i := range n {
		b += int64(len(lineText("out", i)) + 1)
	}
	return b
}

// BenchmarkCaptureThroughput measures a bot printing as fast as it can:
// "lines" writes each line with its own write(2), as an unbuffered Go bot,
// or Python with flush=True, does; "lines8k" writes 8 KiB blocks of them,
// as Python's print to a pipe does by default; "bulk" writes 64 KiB blocks.
// Each loop runs the bot once per sink, interleaved so the load of a shared
// machine falls on all alike: /dev/null; a file the bot writes itself
// (today's agent); a pipe whose reader discards (the floor any pipe sets);
// the capture; the capture with a follower reading the live tail. Figures
// are the bot's own measure of its writing time, start-up excluded, and
// capture/devnull is the ratio the issue asks to keep at 0.9 or more;
// "print" is the bot, Python print()ing formatted lines in a loop;
// "python" the worst case, ready-made lines in 8 KiB writes: only copying.
//
// print, -benchtime 5x, three runs on a quiet machine (2026-12-02), after
// the read end left the poller (pipe_unix.go): capture/devnull 0.78, 0.94,
// 0.85 (0.54-0.64 before, as the discarding "pipe" still shows: its reader
// waits in read(2), so every write wakes it). python: 0.31 before the
// reader/writer split, 0.45 after it, about 0.5 now: writing into any pipe
// costs a copy that /dev/null does not, and the bot writing the file
// itself ("file") gets about 0.7, so the 0.9 is out of reach for it.
func BenchmarkCaptureThroughput(b *testing.B) {
	modes := []struct {
		mode  string
		n     int
		bytes int64
		last  string
		lines uint64
	}{
		{"lines", benchLines, linesBytes(benchLines), lineText("out", benchLines-1), benchLines},
		{"lines8k", 10 * benchLines, linesBytes(10 * benchLines), lineText("out", 10*benchLines-1), 10 * benchLines},
		{"bulk", 200, 200 * 64 << 10, strings.Repeat("y", 63), 200 * 1024},
		// Python writing 100-byte lines, 8 KiB-buffered: the bot
		// (BenchmarkE2ELogsThroughput's, without the agent around it).
		{"python", 0, pyBytes, strings.Repeat("x", 99), pyBytes / 100},
		// Python's print() of a formatted 100-byte line, in a loop: a bot
		// printing as fast as it can, written as bots are.
		{"print", 0, int64(printLines * (len(printLine(0)) + 1)), printLine(printLines - 1), printLines},
	}
	sinks := []string{"devnull", "file", "pipe", "capture", "capture+follower"}
	for _, m := range modes {
		b.Run(m.mode, func(b *testing.B) {
			if m.mode == "python" || m.mode == "print" {
				if _, err := exec.LookPath("python3"); err != nil {
					b.Skip("no python3")
				}
			}
			f, err := openLog(filepath.Join(b.TempDir(), "direct.log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			// Out of the poller, read by a thread blocked in read(2): the
			// cheapest reader a pipe can have.
			pr, pw, err := newPipe()
			if err != nil {
				b.Fatal(err)
			}
			setPipeSize(pw)
			go io.Copy(io.Discard, pr)
			defer pr.Close()
			defer pw.Close()
			capt := mustNew(b, Config{Path: filepath.Join(b.TempDir(), "bot.log")})
			followed := mustNew(b, Config{Path: filepath.Join(b.TempDir(), "bot.log")})
			ch := followed.Follow(b.Context())
			go func() {
				for range ch {
				}
			}()
			secs := make(map[string]float64)
			for b.Loop() {
				for _, sink := range sinks {
					var c *Capture
					switch sink {
					case "file":
						c = &Capture{out: &stream{w: f}}
					case "pipe":
						c = &Capture{out: &stream{w: pw}}
					case "capture":
						c = capt
					case "capture+follower":
						c = followed
					}
					if c != nil && c.err == nil {
						c.err = c.out
					}
					var seq uint64
					if c != nil && c.file != nil {
						seq = c.lastSeq()
					}
					switch m.mode {
					case "python":
						secs[sink] += pySeconds(b, c, fmt.Sprintf(pyBot, pyBytes))
					case "print":
						secs[sink] += pySeconds(b, c, fmt.Sprintf(pyPrint, printLines))
					default:
						secs[sink] += childSeconds(b, c, m.mode, m.n)
					}
					if sink == "capture" || sink == "capture+follower" {
						// All taken in before the next run.
						waitFor(b, 10*time.Second, "last line", func() bool {
							tl := c.Tail(1)
							return len(tl) == 1 && tl[0].Text == m.last && c.lastSeq() >= seq+m.lines
						})
					}
				}
			}
			for _, sink := range sinks {
				b.ReportMetric(float64(m.bytes)*float64(b.N)/secs[sink]/1e6, sink+"-MB/s")
			}
			b.ReportMetric(secs["devnull"]/secs["capture"], "capture/devnull")
			b.ReportMetric(secs["devnull"]/secs["pipe"], "pipe/devnull")
		})
	}
}

// lastSeq is the sequence number of the last line taken in.
func (c *Capture) lastSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// pyBytes is what the python bot writes per run.
const pyBytes = 32 << 20

// pyBot writes pyBytes in 100-byte lines through Python's 8 KiB buffer and
// reports the seconds it took, start-up excluded.
const pyBot = `import sys, time, os
line = b"x" * 99 + b"\n"
out = os.fdopen(1, "wb", buffering=8192)
start = time.time()
for _ in range(%d // 100):
    out.write(line)
out.flush()
open(sys.argv[1], "w").write("%%.6f" %% (time.time() - start))
`

// printLines is how many lines the print bot prints per run (10 MB).
const printLines = 100000

// pyPrint prints printLines formatted 100-byte lines (printLine's) with
// print(), as a Python bot logs, and reports the seconds it took.
const pyPrint = `import sys, time
pad = "x" * 70
start = time.time()
for i in range(%d):
    print(f"processed item {i:08d} status ok {pad}")
sys.stdout.flush()
open(sys.argv[1], "w").write("%%.6f" %% (time.time() - start))
`

// printLine is line i of pyPrint, without its newline.
func printLine(i int) string {
	return fmt.Sprintf("processed item %08d status ok %s", i, strings.Repeat("x", 70))
}

// pySeconds runs a python bot into c's pipes (or /dev/null) and returns
// its own measure of its writing time.
func pySeconds(t testing.TB, c *Capture, script string) float64 {
	t.Helper()
	report := filepath.Join(t.TempDir(), "report")
	secs, err := strconv.ParseFloat(runForReport(t, c, exec.Command("python3", "-c", script, report), report), 64)
	if err != nil {
		t.Fatal(err)
	}
	return secs
}

// BenchmarkTailLatency reports how long a line takes from the bot's write
// to a follower, at 10,000 lines a second.
func BenchmarkTailLatency(b *testing.B) {
	var p50, p99 time.Duration
	for b.Loop() {
		lat := tailLatencies(b)
		p50 += percentile(lat, 0.5)
		p99 += percentile(lat, 0.99)
	}
	b.ReportMetric(float64(p50.Microseconds())/float64(b.N), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds())/float64(b.N), "p99-µs")
}

// BenchmarkConsume measures the capture's own work on 64 KiB reads of
// 64-byte lines (split, file batch, ring), without a child or a pipe: the
// rate above which a bot would wait for the capture.
func BenchmarkConsume(b *testing.B) {
	c := mustNew(b, Config{Path: filepath.Join(b.TempDir(), "bot.log"), MaxSize: 1 << 30})
	block := []byte(strings.Repeat(strings.Repeat("y", 63)+"\n", 1024))
	b.SetBytes(int64(len(block)))
	for b.Loop() {
		c.mu.Lock()
		c.consumeLocked(c.out, block, time.Now())
		c.mu.Unlock()
	}
}
