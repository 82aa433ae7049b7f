package logcap

import (
	"path/filepath"
	"testing"
	"time"
)

// freeSizes empties c's free buffers, returns their sizes (0 for one never
// allocated) and puts them back.
func freeSizes(c *Capture) []int {
	var bufs [][]byte
	for {
		select {
		case b := <-c.free:
			bufs = append(bufs, b)
			continue
		default:
		}
		break
	}
	sizes := make([]int, len(bufs))
	for i, b := range bufs {
		sizes[i] = len(b)
		c.free <- b
	}
	return sizes
}

// A bot that prints a line now and then costs a small buffer per stream, not
// a pipe's worth: an agent of 100 such bots would otherwise hold 200 MiB.
// (One that floods gets full-size reads: BenchmarkCaptureThroughput.)
func TestIdleBotHoldsSmallBuffers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.log")
	c := mustNew(t, Config{Path: path})
	runBot(t, c, "lines", "LOGCAP_N=3")
	waitFor(t, 5*time.Second, "the lines in the tail", func() bool { return len(c.Tail(10)) == 3 })
	waitFor(t, 5*time.Second, "the writer done", func() bool { return c.queued.Load() == 0 })
	for _, n := range freeSizes(c) {
		if n >= ReadBuffer {
			t.Fatalf("free buffers %v after three lines, want none of a pipe's worth (%d bytes)", freeSizes(c), ReadBuffer)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
