// Package logcap captures a bot's stdout and stderr: it writes whole lines to
// a size-rotated log file, keeps the most recent lines of each stream in
// memory for a tail, and hands live lines to followers.
//
// The child writes straight into a pipe (Stdout, Stderr, given to exec.Cmd);
// one goroutine per stream reads it, splits it into lines and writes only
// whole lines to the file, so a rotation never falls inside a line. A line
// longer than MaxLine is cut into pieces, each but the last marked as
// continued, rather than held in memory forever.
//
// With Config.FIFODir set (unix), the pipes are named pipes in that directory
// and each child's end is opened read-write: the bot then always holds a
// reader itself, so it never gets SIGPIPE or EPIPE when the agent dies, and a
// new Capture on the same directory reopens the same pipes and carries on
// with what the bot wrote in between (up to the pipe buffer, 1 MiB on Linux;
// beyond that the bot's writes wait for a reader). With plain pipes (no
// FIFODir, and the only choice off unix) a bot whose agent died gets SIGPIPE
// on its next write and dies; the next agent then starts a new one.
//
// lumberjack starts one goroutine per log that never ends
// (gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun): goleak users must
// ignore it.
package logcap

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxSize   = 10 << 20
	DefaultKeep      = 5
	DefaultRingLines = 1000
	// MaxLine is the longest piece of a line kept whole; a longer line is cut.
	MaxLine = 64 << 10
	// FollowBuffer is how many lines a follower may fall behind before lines
	// are skipped for it.
	FollowBuffer = 1024
)

// Stream names, as Line.Stream carries them.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	// StreamLifeline marks a line the capture itself made (lines skipped).
	StreamLifeline = "lifeline"
)

// contMark ends a cut piece in the file, so a reader of the file sees that
// the bot's line goes on in the next one.
const contMark = " [continued]"

// Timestamp is the prefix layout of each file line when Config.Timestamps.
const Timestamp = "2006-01-02T15:04:05.000Z07:00"

var (
	// ErrSymlink means the log file or a pipe path is a symbolic link; it is
	// refused, not followed, since whoever planted it would choose where the
	// bot's output goes.
	ErrSymlink = errors.New("is a symbolic link")
	// ErrNotPrivate means a path is not ours to use: not a regular file or
	// FIFO, or owned by another user.
	ErrNotPrivate = errors.New("is not a private file of this user")
	// ErrUnsupported means named pipes are not available on this platform.
	ErrUnsupported = errors.New("named pipes are not supported on this platform")
	// ErrNoPath means Config.Path is empty.
	ErrNoPath = errors.New("no log path")
)

// Config says where and how to capture.
type Config struct {
	// Path is the log file. It is created 0600; a symbolic link there is
	// refused. Its directory should be private to this user: the rotating
	// library opens the path by name at each rotation.
	Path string
	// MaxSize is the size in bytes at which the file is rotated (default
	// 10 MB). Rotation happens only between whole lines.
	MaxSize int64
	// Keep is how many rotated files are kept (default 5).
	Keep int
	// Timestamps prefixes each file line with the time it was read, in
	// RFC 3339 with milliseconds. Off, the file holds the bot's output as is.
	Timestamps bool
	// RingLines is how many recent lines of each stream are kept for Tail
	// (default 1000).
	RingLines int
	// FIFODir, when set, holds the named pipes "stdout" and "stderr" through
	// which the bot writes, so its output survives the agent (unix only). It
	// is created 0700 if missing and must be owned by this user.
	FIFODir string
}

// Line is one line of the bot's output, or a marker from the capture.
type Line struct {
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
	Text   string    `json:"text"`
	// Cut says the bot's line was longer than MaxLine and goes on in the
	// next Line of the same stream.
	Cut bool `json:"cut,omitempty"`
	// Skipped, on a StreamLifeline line, is how many lines a slow follower
	// missed.
	Skipped int `json:"skipped,omitempty"`
	// Seq orders lines across both streams.
	Seq uint64 `json:"seq"`
}

// Capture reads a child's two streams. Its goroutines run from New until
// Close.
type Capture struct {
	cfg Config
	out *stream
	err *stream

	mu        sync.Mutex // file, size, rings, followers, seq
	file      *lumberjack.Logger
	size      int64
	batch     []byte
	lastRot   time.Time
	writeErr  error
	seq       uint64
	followers map[*follower]struct{}
	closed    bool

	wg        sync.WaitGroup
	closeOnce sync.Once
}

type stream struct {
	name    string
	r       *os.File // what the capture reads
	w       *os.File // what the child writes to
	pending []byte   // the start of a line not yet ended
	ring    []Line
	next    int // where the next line goes in ring
	full    bool
	stop    chan struct{}
}

type follower struct {
	ch      chan Line
	skipped int
}

// New opens the log file and the pipes and starts reading them.
func New(cfg Config) (*Capture, error) {
	if cfg.Path == "" {
		return nil, ErrNoPath
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.RingLines <= 0 {
		cfg.RingLines = DefaultRingLines
	}
	size, err := checkLog(cfg.Path)
	if err != nil {
		return nil, err
	}
	c := &Capture{
		cfg:  cfg,
		size: size,
		file: &lumberjack.Logger{
			Filename: cfg.Path,
			// We rotate ourselves at cfg.MaxSize, between lines; the
			// library's own limit (whole megabytes) sits above any file we
			// let grow, so it never rotates on its own.
			MaxSize:    int((cfg.MaxSize+int64(MaxLine+len(Timestamp)+len(contMark)+64))>>20) + 1,
			MaxBackups: cfg.Keep,
		},
		followers: make(map[*follower]struct{}),
	}
	c.out = &stream{name: StreamStdout, ring: make([]Line, cfg.RingLines), stop: make(chan struct{})}
	c.err = &stream{name: StreamStderr, ring: make([]Line, cfg.RingLines), stop: make(chan struct{})}
	for _, s := range []*stream{c.out, c.err} {
		if cfg.FIFODir != "" {
			s.r, s.w, err = openFIFO(cfg.FIFODir, s.name)
		} else {
			s.r, s.w, err = os.Pipe()
		}
		if err != nil {
			c.closeFiles()
			return nil, fmt.Errorf("open %s pipe: %w", s.name, err)
		}
		setPipeSize(s.w)
	}
	for _, s := range []*stream{c.out, c.err} {
		c.wg.Go(func() { c.read(s) })
	}
	return c, nil
}

// Stdout is the write end to give the child as its stdout. It stays open
// (and the same) for the Capture's life, so every respawn gets it again.
func (c *Capture) Stdout() *os.File { return c.out.w }

// Stderr is the write end to give the child as its stderr.
func (c *Capture) Stderr() *os.File { return c.err.w }

// Err returns the last error writing the log file, if any. Lines keep
// reaching the tail and the followers meanwhile: the bot is never held up
// by a full disk.
func (c *Capture) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeErr
}

// Close stops reading after taking in what the pipes already hold, writes
// a trailing unfinished line as it is (no newline added, so a later Capture
// on the same FIFOs completes it), closes the followers and the file. The
// named pipes stay: the bot may still hold them.
func (c *Capture) Close() error {
	c.closeOnce.Do(func() {
		for _, s := range []*stream{c.out, c.err} {
			close(s.stop)
			// Wakes the reader out of a blocking Read; it then drains.
			_ = s.r.SetReadDeadline(time.Now())
		}
		c.wg.Wait()
		c.mu.Lock()
		c.closed = true
		for _, s := range []*stream{c.out, c.err} {
			if len(s.pending) > 0 {
				c.batch = append(c.batch[:0], s.pending...)
				c.flushLocked()
				s.pending = nil
			}
		}
		for f := range c.followers {
			close(f.ch)
			delete(c.followers, f)
		}
		c.mu.Unlock()
		c.closeFiles()
	})
	if err := c.file.Close(); err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	return nil
}

func (c *Capture) closeFiles() {
	for _, s := range []*stream{c.out, c.err} {
		if s == nil {
			continue
		}
		if s.r != nil {
			s.r.Close()
		}
		if s.w != nil {
			s.w.Close()
		}
	}
}

// After a read smaller than coalesceBelow, the reader waits coalesce before
// the next one: at most that much latency for the tail, for far fewer
// system calls when the bot is busy.
const (
	coalesce      = 2 * time.Millisecond
	coalesceBelow = 64 << 10
)

// read is a stream's goroutine: it never waits on anything but its pipe and
// the capture's short critical section, so the child is never slowed by a
// follower.
func (c *Capture) read(s *stream) {
	buf := make([]byte, 256<<10)
	for {
		n, err := s.r.Read(buf)
		if n > 0 {
			c.consume(s, buf[:n])
		}
		if err == nil {
			if n < coalesceBelow {
				// A bot printing line by line would otherwise cost us a
				// wake-up, a read and a file write per line, CPU taken from
				// the bot; a short nap lets its lines gather in the pipe
				// (1 MiB holds far more than it writes in that time).
				time.Sleep(coalesce)
			}
			continue
		}
		select {
		case <-s.stop:
			_ = s.r.SetReadDeadline(time.Time{})
			// What the bot wrote before Close is taken in, but no more than
			// the pipe can hold, so a bot writing on cannot keep us here.
			for total := 0; total < 4<<20; {
				n := drain(s.r, buf)
				if n <= 0 {
					break
				}
				c.consume(s, buf[:n])
				total += n
			}
		default:
		}
		return
	}
}

// consume splits data into lines and takes the whole ones.
func (c *Capture) consume(s *stream, data []byte) {
	now := time.Now()
	var ts []byte
	if c.cfg.Timestamps {
		ts = now.UTC().AppendFormat(make([]byte, 0, len(Timestamp)+1), Timestamp)
		ts = append(ts, ' ')
	}
	buf := data
	if len(s.pending) > 0 { // s.pending is this goroutine's alone
		buf = append(s.pending, data...)
	}
	// One string for all the whole lines of this read: each Line's text is
	// a slice of it, so a bot printing short lines costs one allocation a
	// read, not one a line.
	var whole string
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		whole, buf = string(buf[:i+1]), buf[i+1:]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(whole) > 0 {
		i := strings.IndexByte(whole, '\n')
		line := whole[:i]
		for len(line) > MaxLine {
			k := cutPoint(line)
			c.emitLocked(s, line[:k], true, ts, now)
			line = line[k:]
		}
		c.emitLocked(s, line, false, ts, now)
		whole = whole[i+1:]
	}
	for len(buf) > MaxLine {
		k := cutPoint(buf)
		c.emitLocked(s, string(buf[:k]), true, ts, now)
		buf = buf[k:]
	}
	s.pending = append(s.pending[:0], buf...)
	c.flushLocked()
}

// cutPoint is where a line longer than MaxLine is cut: between runes, so
// each piece stays valid UTF-8.
func cutPoint[T string | []byte](b T) int {
	for j := MaxLine; j > MaxLine-utf8.UTFMax; j-- {
		if utf8.RuneStart(b[j]) {
			return j
		}
	}
	return MaxLine
}

// emitLocked adds one line to the file batch, the ring and the followers.
func (c *Capture) emitLocked(s *stream, text string, cut bool, ts []byte, now time.Time) {
	rec := len(ts) + len(text) + 1
	if cut {
		rec += len(contMark)
	}
	if c.size+int64(len(c.batch)) > 0 && c.size+int64(len(c.batch)+rec) > c.cfg.MaxSize {
		c.flushLocked()
		c.rotateLocked(now)
	}
	c.batch = append(c.batch, ts...)
	c.batch = append(c.batch, text...)
	if cut {
		c.batch = append(c.batch, contMark...)
	}
	c.batch = append(c.batch, '\n')

	c.seq++
	l := Line{Stream: s.name, Time: now, Text: strings.TrimSuffix(text, "\r"), Cut: cut, Seq: c.seq}
	s.ring[s.next] = l
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
	for f := range c.followers {
		f.send(l, now)
	}
}

// send never blocks: a follower too slow for the bot loses lines and is
// told how many before the next one it gets.
func (f *follower) send(l Line, now time.Time) {
	if f.skipped > 0 {
		if len(f.ch) == cap(f.ch) { // only this goroutine sends: still full
			f.skipped++
			return
		}
		m := Line{Stream: StreamLifeline, Time: now, Skipped: f.skipped,
			Text: strconv.Itoa(f.skipped) + " lines skipped"}
		select {
		case f.ch <- m:
			f.skipped = 0
		default:
			f.skipped++
			return
		}
	}
	select {
	case f.ch <- l:
	default:
		f.skipped++
	}
}

func (c *Capture) flushLocked() {
	if len(c.batch) == 0 {
		return
	}
	n, err := c.file.Write(c.batch)
	c.size += int64(n)
	if err != nil {
		c.writeErr = fmt.Errorf("write log: %w", err)
	}
	c.batch = c.batch[:0]
}

func (c *Capture) rotateLocked(now time.Time) {
	// Rotated files are named to the millisecond: a second rotation in the
	// same millisecond would overwrite the first, losing its lines.
	if ms := now.Truncate(time.Millisecond); !ms.After(c.lastRot.Truncate(time.Millisecond)) {
		time.Sleep(time.Until(c.lastRot.Truncate(time.Millisecond).Add(time.Millisecond)) + 10*time.Microsecond)
	}
	c.lastRot = time.Now()
	if err := c.file.Rotate(); err != nil {
		c.writeErr = fmt.Errorf("rotate log: %w", err)
		return
	}
	c.size = 0
	// The library opens the new file by name and copies the old one's mode;
	// check that it is still our private regular file.
	if _, err := checkLog(c.cfg.Path); err != nil {
		c.writeErr = fmt.Errorf("rotate log: %w", err)
	}
}

// Tail returns the last n lines of both streams, oldest first.
func (c *Capture) Tail(n int) []Line {
	if n <= 0 {
		return nil
	}
	c.mu.Lock()
	var out []Line
	for _, s := range []*stream{c.out, c.err} {
		out = append(out, s.lastLocked(n)...)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Line) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func (s *stream) lastLocked(n int) []Line {
	have := s.next
	if s.full {
		have = len(s.ring)
	}
	n = min(n, have)
	out := make([]Line, 0, n)
	for i := s.next - n; i < s.next; i++ {
		out = append(out, s.ring[(i+len(s.ring))%len(s.ring)])
	}
	return out
}

// Follow returns the lines captured from now on, until ctx is done or the
// Capture is closed; then the channel is closed. A follower that falls
// FollowBuffer lines behind misses lines, and gets a StreamLifeline line
// saying how many.
func (c *Capture) Follow(ctx context.Context) <-chan Line {
	f := &follower{ch: make(chan Line, FollowBuffer)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(f.ch)
		return f.ch
	}
	c.followers[f] = struct{}{}
	context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.followers[f]; ok {
			delete(c.followers, f)
			close(f.ch)
		}
	})
	return f.ch
}

// checkLog makes sure path is our own private regular file, creating it if
// missing, and returns its size.
func checkLog(path string) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, fmt.Errorf("create log dir: %w", err)
	}
	f, err := openLog(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return fi.Size(), nil
}
