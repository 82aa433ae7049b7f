// Package logcap captures a bot's stdout and stderr: it writes whole lines to
// a size-rotated log file, keeps the most recent lines of each stream in
// memory for a tail, and hands live lines to followers.
//
// The child writes straight into a pipe (Stdout, Stderr, given to exec.Cmd).
// One goroutine per stream only reads it, in reads of up to a pipe's worth,
// and hands each read to a single writer goroutine, which writes only whole
// lines to the file, so a rotation never falls inside a line, keeps the tail
// and feeds the followers. The pipe thus never waits on the disk, and a
// bot printing as fast as it can waits only when the pipe is full. The
// reads in the writer's hands are bounded (MaxQueued bytes): when the disk
// is slower than the bot for longer than that, the reader stops, the pipe
// fills and the bot's writes wait, as they would on a slow file, rather than
// the agent's memory growing. A line longer than MaxLine is cut into pieces,
// each but the last marked as continued, rather than held in memory forever.
//
// With Config.FIFODir set (unix), the pipes are named pipes in that directory
// and each child's end is opened read-write: the bot then always holds a
// reader itself, so it never gets SIGPIPE or EPIPE when the agent dies, and a
// new Capture on the same directory reopens the same pipes and carries on
// with what the bot wrote in between (up to the pipe buffer: on Linux 8 MiB
// for a privileged agent, else fs.pipe-max-size, 1 MiB by default; beyond
// that the bot's writes wait for a reader). An agent killed with
// kill -9 loses only what it had read and not yet written, at most
// MaxQueued bytes and in practice the last read. With plain pipes (no
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
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lifeline-dev/lifeline/internal/privfile"
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
	// ReadBuffer is the most one read of a pipe takes: a full pipe at once.
	ReadBuffer = 1 << 20
	// SmallRead is the buffer of a stream whose last read did not fill its
	// buffer: an idle or line-by-line bot, the common case, so that an agent
	// of 100 such bots holds 200 small buffers rather than 200 MiB. (One
	// agent, 100 bots, 1 Hz heartbeats: 26.4 MB RSS with 16 KiB, 27.4 MB
	// with 64 KiB, 63 MB with a pipe's worth from the first read.)
	SmallRead = 16 << 10
	// QueueReads is how many reads may wait for the writer, both streams
	// together.
	QueueReads = 4
	// MaxQueued bounds the bytes read from the pipes and not yet written:
	// the memory a bot faster than the disk can make the agent hold.
	MaxQueued = QueueReads * ReadBuffer
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
	ErrSymlink = privfile.ErrSymlink
	// ErrNotPrivate means a path is not ours to use: not a regular file or
	// FIFO, or owned by another user.
	ErrNotPrivate = errors.New("is not a private file of this user")
	// ErrUnsupported means named pipes are not available on this platform.
	ErrUnsupported = errors.New("named pipes are not supported on this platform")
	// ErrNoPath means Config.Path is empty.
	ErrNoPath = errors.New("no log path")

	// errStopped ends a reader's wait once Close was called.
	errStopped = errors.New("capture closed")
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

	// free holds the buffers a reader may fill (nil until first used): a
	// reader with none waits, and the bot with it, so their number bounds
	// what the agent holds for a slow disk.
	free chan []byte
	// reads carries the filled buffers to the writer, in the order read.
	reads chan chunk
	// queued is the bytes read and not yet written, for tests.
	queued atomic.Int64

	mu        sync.Mutex // file, size, rings, followers, seq
	file      *lumberjack.Logger
	size      int64
	batch     []byte // a read's lines with their stamps or marks
	lastRot   time.Time
	writeErr  error
	seq       uint64
	followers map[*follower]struct{}
	closed    bool

	readers   sync.WaitGroup
	writer    sync.WaitGroup
	closeOnce sync.Once
}

// chunk is one read of a stream, handed from its reader to the writer.
type chunk struct {
	s   *stream
	buf []byte // the whole buffer, back to free once written
	n   int
	at  time.Time
}

type stream struct {
	name    string
	r       *os.File // what the capture reads, not polled (see pipe_unix.go)
	w       *os.File // what the child writes to
	fd      int      // r's descriptor, non-blocking (unix)
	mu      sync.Mutex
	idle    *os.File // r's polled duplicate while it waits (unix), under mu
	pipe    int      // its size in bytes, 0 if unknown
	pending []byte   // the start of a line not yet ended (the writer's)
	ring    []segment
	lines   int // in ring
	stop    chan struct{}
}

// segment is the tail's record of consecutive lines of one read: their text
// as one string, not a Line each, so that keeping the tail costs a copy of
// the read's last lines, not work per line.
type segment struct {
	text string // n lines, each ended by '\n' (but a cut piece's)
	n    int
	seq  uint64 // of the first line
	at   time.Time
	cut  bool // a single piece of a longer line
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
		free:      make(chan []byte, QueueReads),
		reads:     make(chan chunk, QueueReads),
	}
	for range QueueReads {
		c.free <- nil
	}
	c.out = &stream{name: StreamStdout, stop: make(chan struct{})}
	c.err = &stream{name: StreamStderr, stop: make(chan struct{})}
	for _, s := range []*stream{c.out, c.err} {
		if cfg.FIFODir != "" {
			s.r, s.w, err = openFIFO(cfg.FIFODir, s.name)
		} else {
			s.r, s.w, err = newPipe()
		}
		if err == nil {
			err = s.prepare()
		}
		if err != nil {
			c.closeFiles()
			return nil, fmt.Errorf("open %s pipe: %w", s.name, err)
		}
		s.pipe = setPipeSize(s.w)
	}
	c.writer.Go(c.write)
	for _, s := range []*stream{c.out, c.err} {
		c.readers.Go(func() { c.read(s) })
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
// it all, then a trailing unfinished line as it is (no newline added, so a
// later Capture on the same FIFOs completes it), closes the followers and
// the file. The named pipes stay: the bot may still hold them.
func (c *Capture) Close() error {
	c.closeOnce.Do(func() {
		for _, s := range []*stream{c.out, c.err} {
			close(s.stop)
			// Wakes the reader out of its wait; it then drains.
			s.wake()
		}
		c.readers.Wait()
		close(c.reads)
		c.writer.Wait()
		c.mu.Lock()
		c.closed = true
		for _, s := range []*stream{c.out, c.err} {
			if len(s.pending) > 0 {
				c.writeLocked(s.pending)
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

// After a read smaller than coalesceBelow, the reader naps before the next
// one, at most coalesce: that much latency for the tail, for far fewer
// system calls when the bot is busy. A bot that fills a quarter of the pipe
// during a nap gets shorter naps (none below minNap), lest a nap stretched
// by a loaded machine let the pipe fill and the bot wait.
const (
	coalesce      = 2 * time.Millisecond
	coalesceBelow = 64 << 10
	minNap        = 50 * time.Microsecond
)

// read is a stream's goroutine: it waits on nothing but its pipe and, when
// the writer is MaxQueued behind, a free buffer. Never on the disk or a
// follower, so the child is slowed by neither.
func (c *Capture) read(s *stream) {
	nap, napped := coalesce, false
	size := SmallRead
	for {
		buf := c.take(size)
		n, err := s.waitRead(buf)
		// A read that filled its buffer says the bot outruns it: the next
		// one takes a pipe's worth. One that did not goes back to small.
		size = SmallRead
		if n == len(buf) {
			size = ReadBuffer
		}
		c.hand(s, buf, n)
		if err == nil {
			if napped || nap < minNap {
				switch {
				case n >= ReadBuffer/4:
					nap /= 2
				case n < ReadBuffer/16:
					nap = min(2*max(nap, minNap/2), coalesce)
				}
			}
			napped = false
			if n < coalesceBelow && nap >= minNap {
				// A bot printing line by line would otherwise cost us a
				// wake-up, a read and a file write per line, CPU taken from
				// the bot.
				time.Sleep(nap)
				napped = true
			}
			continue
		}
		select {
		case <-s.stop:
			// What the bot wrote before Close is taken in, but no more than
			// the pipe can hold, so a bot writing on cannot keep us here.
			for total := 0; total < max(s.pipe, 4*ReadBuffer)+ReadBuffer; {
				buf := c.take(ReadBuffer)
				n := s.drain(buf)
				c.hand(s, buf, n)
				if n <= 0 {
					break
				}
				total += n
			}
		default:
		}
		return
	}
}

// take returns a free buffer of at least size bytes, waiting for the writer
// to give one back. A smaller one is dropped for a new one (their number,
// not their size, is what free bounds); a bigger one is used as it is.
func (c *Capture) take(size int) []byte {
	buf := <-c.free
	if len(buf) < size {
		buf = make([]byte, size)
	}
	return buf
}

// hand gives the writer the n bytes read into buf, or buf back to free.
func (c *Capture) hand(s *stream, buf []byte, n int) {
	if n <= 0 {
		c.free <- buf
		return
	}
	c.queued.Add(int64(n))
	c.reads <- chunk{s: s, buf: buf, n: n, at: time.Now()}
}

// write is the writer's goroutine: each read in turn to the file, the tail
// and the followers, in the order the readers took them from the pipes.
func (c *Capture) write() {
	for r := range c.reads {
		c.mu.Lock()
		c.consumeLocked(r.s, r.buf[:r.n], r.at)
		c.mu.Unlock()
		c.queued.Add(-int64(r.n))
		c.free <- r.buf
	}
}

// consumeLocked takes in one read: its whole lines at once, the start of an
// unfinished one kept for the next read. data is not kept: its buffer is
// read into again.
func (c *Capture) consumeLocked(s *stream, data []byte, now time.Time) {
	if len(s.pending) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			s.pending = append(s.pending, data...)
			c.cutPendingLocked(s, now)
			return
		}
		s.pending = append(s.pending, data[:i+1]...)
		c.wholeLocked(s, s.pending, now)
		s.pending = s.pending[:0]
		data = data[i+1:]
	}
	i := bytes.LastIndexByte(data, '\n')
	c.wholeLocked(s, data[:i+1], now)
	s.pending = append(s.pending[:0], data[i+1:]...)
	c.cutPendingLocked(s, now)
}

// cutPendingLocked emits the pieces of an unfinished line grown past
// MaxLine, keeping the rest.
func (c *Capture) cutPendingLocked(s *stream, now time.Time) {
	p := s.pending
	for len(p) > MaxLine {
		k := cutPoint(p)
		c.pieceLocked(s, p[:k], now)
		p = p[k:]
	}
	if len(p) < len(s.pending) {
		s.pending = append(s.pending[:0], p...)
	}
}

// wholeLocked takes in whole lines (each ended by '\n'): runs of lines no
// longer than MaxLine at once, a longer line in pieces.
func (c *Capture) wholeLocked(s *stream, b []byte, now time.Time) {
	for len(b) > 0 {
		// Every MaxLine+1 bytes from a line's start hold a newline, or that
		// line is too long: a check per 64 KiB, not per line.
		p := 0
		for p < len(b) {
			i := bytes.LastIndexByte(b[p:min(p+MaxLine+1, len(b))], '\n')
			if i < 0 {
				break
			}
			p += i + 1
		}
		if p > 0 {
			c.linesLocked(s, b[:p], now)
			b = b[p:]
		}
		if len(b) > 0 {
			line := b[:bytes.IndexByte(b, '\n')+1] // with its newline
			b = b[len(line):]
			for len(line)-1 > MaxLine {
				k := cutPoint(line)
				c.pieceLocked(s, line[:k], now)
				line = line[k:]
			}
			c.linesLocked(s, line, now)
		}
	}
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

// stamp returns the prefix of each file line read at now.
func (c *Capture) stamp(now time.Time) []byte {
	if !c.cfg.Timestamps {
		return nil
	}
	return append(now.UTC().AppendFormat(make([]byte, 0, len(Timestamp)+1), Timestamp), ' ')
}

// linesLocked takes in whole lines, none longer than MaxLine, as the bot
// wrote them: to the file in one write (more at a rotation), and to the tail
// and the followers.
func (c *Capture) linesLocked(s *stream, b []byte, now time.Time) {
	n := bytes.Count(b, []byte{'\n'})
	seq := c.seq + 1
	c.seq += uint64(n)
	if ts := c.stamp(now); ts != nil {
		c.batch = c.batch[:0]
		for rest := b; len(rest) > 0; {
			i := bytes.IndexByte(rest, '\n')
			c.batch = append(append(c.batch, ts...), rest[:i+1]...)
			rest = rest[i+1:]
		}
		c.fileLocked(c.batch)
	} else {
		c.fileLocked(b)
	}
	// The tail keeps at most RingLines lines: only the last of them are
	// copied, unless followers need every line as a string anyway.
	var all string
	if len(c.followers) > 0 {
		all = string(b)
	}
	start, k := 0, n
	if n > c.cfg.RingLines {
		k = c.cfg.RingLines
		start = lastLines(b, n, k)
	}
	// With followers the tail shares their string: it then holds the whole
	// read (up to ReadBuffer) for its last lines, while they are recent.
	var kept string
	if all == "" {
		kept = string(b[start:])
	} else {
		kept = all[start:]
	}
	c.remember(s, segment{text: kept, n: k, seq: seq + uint64(n-k), at: now})
	for i := 0; all != ""; i++ {
		j := strings.IndexByte(all, '\n')
		c.sendLocked(Line{Stream: s.name, Time: now, Text: strings.TrimSuffix(all[:j], "\r"), Seq: seq + uint64(i)}, now)
		all = all[j+1:]
	}
}

// pieceLocked takes in a piece of a line longer than MaxLine: marked as
// continued in the file and cut for the tail and the followers.
func (c *Capture) pieceLocked(s *stream, piece []byte, now time.Time) {
	c.seq++
	c.batch = append(append(append(c.batch[:0], c.stamp(now)...), piece...), contMark+"\n"...)
	c.fileLocked(c.batch)
	text := string(piece)
	c.remember(s, segment{text: text, n: 1, seq: c.seq, at: now, cut: true})
	if len(c.followers) > 0 {
		c.sendLocked(Line{Stream: s.name, Time: now, Text: strings.TrimSuffix(text, "\r"), Cut: true, Seq: c.seq}, now)
	}
}

// lastLines returns where the last k of the n lines in b start (0 < k < n).
// It guesses from the mean line length and counts newlines (vector
// instructions) to correct the guess, rather than stepping back line by
// line.
func lastLines(b []byte, n, k int) int {
	nl := []byte{'\n'}
	step := (len(b)/n + 1) * k
	p := max(0, len(b)-step)
	for {
		// The newlines in b[p:] end the lines that start at or after p,
		// and the one p is inside of: the first got-k are too many.
		got := bytes.Count(b[p:], nl)
		if got > k || (got == k && (p == 0 || b[p-1] == '\n')) {
			for range got - k {
				p += bytes.IndexByte(b[p:], '\n') + 1
			}
			return p
		}
		step *= 2
		p = max(0, len(b)-step)
	}
}

// remember adds lines to the stream's tail and forgets those beyond
// RingLines.
func (c *Capture) remember(s *stream, g segment) {
	s.ring = append(s.ring, g)
	s.lines += g.n
	for s.lines-s.ring[0].n >= c.cfg.RingLines {
		s.lines -= s.ring[0].n
		s.ring[0] = segment{} // its text is garbage now
		s.ring = s.ring[1:]
	}
}

// fileLocked writes whole file lines, rotating first whenever the next line
// would take the file past MaxSize.
func (c *Capture) fileLocked(b []byte) {
	for len(b) > 0 {
		room := c.cfg.MaxSize - c.size
		if int64(len(b)) <= room {
			c.writeLocked(b)
			return
		}
		k := 0
		if room > 0 {
			k = bytes.LastIndexByte(b[:room], '\n') + 1
		}
		if k == 0 && c.size == 0 {
			// A line longer than MaxSize goes alone into a file of its own.
			k = bytes.IndexByte(b, '\n') + 1
		}
		c.writeLocked(b[:k])
		if b = b[k:]; len(b) > 0 {
			c.rotateLocked()
		}
	}
}

func (c *Capture) writeLocked(b []byte) {
	if len(b) == 0 {
		return
	}
	n, err := c.file.Write(b)
	c.size += int64(n)
	if err != nil {
		c.writeErr = fmt.Errorf("write log: %w", err)
	}
}

// sendLocked hands a line to every follower.
func (c *Capture) sendLocked(l Line, now time.Time) {
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

func (c *Capture) rotateLocked() {
	// Rotated files are named to the millisecond, by the time the library
	// reads within Rotate: a second rotation in the same millisecond would
	// overwrite the first, losing its lines. lastRot, read after Rotate,
	// is no earlier than that name.
	if d := time.Until(c.lastRot.Truncate(time.Millisecond).Add(time.Millisecond)); d > 0 {
		time.Sleep(d + 10*time.Microsecond)
	}
	err := c.file.Rotate()
	c.lastRot = time.Now()
	if err != nil {
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
		out = append(out, s.last(min(n, c.cfg.RingLines))...)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Line) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// last returns the stream's last n lines, oldest first.
func (s *stream) last(n int) []Line {
	i := len(s.ring)
	for have := 0; i > 0 && have < n; {
		i--
		have += s.ring[i].n
	}
	var out []Line
	for _, g := range s.ring[i:] {
		text := g.text
		for j := range g.n {
			k := strings.IndexByte(text, '\n')
			if k < 0 { // a cut piece
				k = len(text)
			}
			out = append(out, Line{Stream: s.name, Time: g.at, Text: strings.TrimSuffix(text[:k], "\r"), Cut: g.cut, Seq: g.seq + uint64(j)})
			text = text[min(k+1, len(text)):]
		}
	}
	return out[max(0, len(out)-n):]
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
