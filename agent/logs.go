package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/logcap"
	"github.com/lifeline-dev/lifeline/internal/privfile"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Defaults of the log capture, as the flags have them.
const (
	DefaultLogMaxSize = logcap.DefaultMaxSize
	DefaultLogKeep    = logcap.DefaultKeep
)

// maxFollows bounds the live follows of one bot's log: each costs a
// goroutine and a buffer of lines.
const maxFollows = 32

// ErrBadSize refuses a size that is not a positive number of bytes with an
// optional unit.
var ErrBadSize = errors.New("is not a size such as 10MB, 512KB or 1048576")

// ParseSize reads a size in bytes: a number with an optional unit B, KB,
// MB or GB (powers of 1024, case ignored).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("%q %w", s, ErrBadSize)
	}
	return n * mult, nil
}

// fifoDir is where a bot's output pipes live: beside its PID file, so that
// the next agent for the same bot finds them. Empty where there are no named
// pipes (the bot then writes into plain pipes and dies with its agent's end).
func fifoDir(pidFile string) string {
	if runtime.GOOS == "windows" {
		return ""
	}
	return strings.TrimSuffix(pidFile, ".pid") + ".pipes"
}

// botLogs is one bot's log capture and its followers. The capture is opened
// by the bot's loop when it begins and closed when it ends; the endpoints
// read it from the responder's goroutine.
type botLogs struct {
	name string
	c    atomic.Pointer[logcap.Capture]

	mu      sync.Mutex
	follows map[string]*follow // by reply subject
	closed  bool               // no follow may start: the capture is closing
	wg      sync.WaitGroup
}

type follow struct {
	renew chan struct{}
}

// openLogs starts capturing the bot's output into its log file. A capture
// that cannot start (a log of /dev/null, a symbolic link) leaves the bot to
// the plain file, as before: the bot matters more than its log.
func (s *supervisor) openLogs() {
	if s.cfg.LogFile == "" {
		return
	}
	if _, err := os.Stat(filepath.Dir(s.cfg.LogFile)); err != nil {
		// Not ours to create: the plain open fails too and status says why.
		return
	}
	c, err := logcap.New(logcap.Config{
		Path:       s.cfg.LogFile,
		MaxSize:    s.cfg.LogMaxSize,
		Keep:       s.cfg.LogKeep,
		Timestamps: s.cfg.LogTimestamps,
		FIFODir:    fifoDir(s.cfg.PIDFile),
	})
	if err != nil {
		s.log.Warn("bot log not captured: no rotation, no `lifeline logs`", "log", s.cfg.LogFile, "err", err)
		return
	}
	s.logs.c.Store(c)
}

// closeLogs stops the capture (the bot keeps its pipes and writes on into
// them for the next agent) and ends every follow.
func (s *supervisor) closeLogs() {
	s.logs.mu.Lock()
	s.logs.closed = true
	s.logs.mu.Unlock()
	c := s.logs.c.Swap(nil)
	if c == nil {
		return
	}
	if err := c.Close(); err != nil {
		s.log.Warn("close bot log", "err", err)
	}
	s.logs.wg.Wait()
}

// botOutput gives cmd the capture's pipes, or else the log file itself.
func (s *supervisor) botOutput() (stdout, stderr *os.File, closeAfter func()) {
	if c := s.logs.c.Load(); c != nil {
		return c.Stdout(), c.Stderr(), func() {}
	}
	if s.cfg.LogFile == "" {
		return nil, nil, func() {}
	}
	logf, err := privfile.OpenAppend(s.cfg.LogFile)
	if err != nil {
		s.problem = fmt.Sprintf("cannot open bot log: %v", err)
		s.log.Warn("bot output discarded", "err", err)
		return nil, nil, func() {}
	}
	return logf, logf, func() { logf.Close() }
}

func toBusLines(ls []logcap.Line) []bus.LogLine {
	out := make([]bus.LogLine, len(ls))
	for i, l := range ls {
		out[i] = bus.LogLine(l)
	}
	return out
}

// logsErr answers a logs request with an error, with micro's headers.
func logsErr(m micro.Request, code, msg string) {
	_ = m.Error(code, msg, bus.EncodeLogs(bus.LogsReply{Error: msg}))
}

// capture returns the capture or answers why there is none.
func (s *supervisor) capture(m micro.Request) *logcap.Capture {
	c := s.logs.c.Load()
	if c == nil {
		if s.cfg.LogFile == "" {
			logsErr(m, "404", "bot "+s.cfg.Name+" has no log: its agent discards its output")
		} else {
			logsErr(m, "503", "bot "+s.cfg.Name+"'s log is not captured (agent starting, stopping, or the log could not be opened: see the agent's own log)")
		}
	}
	return c
}

// handleLogs answers the last n lines, at once (on the responder's
// goroutine: memory only, no file read).
func (s *supervisor) handleLogs(m micro.Request) {
	req, err := bus.DecodeLogsRequest(m.Data())
	if err != nil {
		logsErr(m, "400", err.Error())
		return
	}
	c := s.capture(m)
	if c == nil {
		return
	}
	_ = m.Respond(bus.EncodeLogs(bus.LogsReply{OK: true, Lines: toBusLines(c.Tail(req.N))}))
}

// handleFollow starts or renews a follow: a goroutine that publishes
// batches of new lines to the request's reply subject, until
// bus.LogsFollowExpiry passes without a renewal or the capture closes.
func (s *supervisor) handleFollow(m micro.Request) {
	req, err := bus.DecodeLogsRequest(m.Data())
	if err != nil {
		logsErr(m, "400", err.Error())
		return
	}
	reply := m.Reply()
	if reply == "" {
		return
	}
	c := s.capture(m)
	if c == nil {
		return
	}
	l := &s.logs
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.follows[reply]; ok {
		select {
		case f.renew <- struct{}{}:
		default:
		}
		return
	}
	if l.closed {
		logsErr(m, "503", "agent is shutting down")
		return
	}
	if len(l.follows) >= maxFollows {
		logsErr(m, "503", fmt.Sprintf("bot %s's log has %d followers already", s.cfg.Name, maxFollows))
		return
	}
	if l.follows == nil {
		l.follows = map[string]*follow{}
	}
	f := &follow{renew: make(chan struct{}, 1)}
	l.follows[reply] = f
	nc := s.nc
	l.wg.Go(func() {
		defer func() {
			l.mu.Lock()
			delete(l.follows, reply)
			l.mu.Unlock()
		}()
		runFollow(nc, reply, c, req, f)
	})
}

// runFollow sends the follow's first lines, then every new line in batches
// at most bus.LogsBatchDelay late.
func runFollow(nc *nats.Conn, reply string, c *logcap.Capture, req bus.LogsRequest, f *follow) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Follow before Tail, so that no line falls between them; lines both
	// returned are sent once, by their sequence.
	live := c.Follow(ctx)
	n := req.N
	if req.Renew {
		n = bus.MaxLogLines // a follow resumed by a new agent: all since
	}
	first := toBusLines(c.Tail(n))
	var lastSeq uint64
	if len(first) > 0 {
		lastSeq = first[len(first)-1].Seq
	}
	if !req.Since.IsZero() {
		kept := first[:0]
		for _, l := range first {
			if l.Time.After(req.Since) {
				kept = append(kept, l)
			}
		}
		first = kept
	}
	publish := func(r bus.LogsReply) bool {
		r.OK = r.Error == ""
		return nc.Publish(reply, bus.EncodeLogs(r)) == nil
	}
	if !publish(bus.LogsReply{Lines: first}) {
		return
	}
	expire := time.NewTimer(bus.LogsFollowExpiry)
	defer expire.Stop()
	var batch []bus.LogLine
	size := 0
	var flushT *time.Timer
	flush := func() bool {
		if flushT != nil {
			flushT.Stop()
			flushT = nil
		}
		ok := publish(bus.LogsReply{Lines: batch})
		batch, size = nil, 0
		return ok
	}
	for {
		select {
		case l, ok := <-live:
			if !ok {
				flush()
				publish(bus.LogsReply{End: true, Error: "the agent is stopping"})
				return
			}
			if l.Seq <= lastSeq && l.Stream != logcap.StreamLifeline {
				continue
			}
			batch = append(batch, bus.LogLine(l))
			size += len(l.Text) + 96
			if size >= bus.MaxLogsBytes/2 {
				if !flush() {
					return
				}
			} else if flushT == nil {
				flushT = time.NewTimer(bus.LogsBatchDelay)
			}
		case <-timerC(flushT):
			flushT = nil
			if !flush() {
				return
			}
		case <-f.renew:
			expire.Reset(bus.LogsFollowExpiry)
			if len(batch) == 0 && !flush() { // an empty batch: "still here"
				return
			}
		case <-expire.C:
			flush()
			publish(bus.LogsReply{End: true})
			return
		}
	}
}

// logSize is a TOML size: "10MB" or a number of bytes.
type logSize int64

func (z *logSize) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v <= 0 {
			return fmt.Errorf("%d %w", v, ErrBadSize)
		}
		*z = logSize(v)
		return nil
	case string:
		n, err := ParseSize(v)
		*z = logSize(n)
		return err
	}
	return fmt.Errorf("%v %w", v, ErrBadSize)
}

// mergeLogs takes into out the log keys b gives.
func mergeLogs(out *botTOML, b botTOML) {
	if b.LogMaxSize != nil {
		out.LogMaxSize = b.LogMaxSize
	}
	if b.LogKeep != nil {
		out.LogKeep = b.LogKeep
	}
	if b.LogTimestamps != nil {
		out.LogTimestamps = b.LogTimestamps
	}
}

// logs sets a's log settings from b, with the flags' defaults, or returns
// the key at fault.
func (b botTOML) logs(a *Agent) (string, error) {
	a.LogMaxSize, a.LogKeep = DefaultLogMaxSize, DefaultLogKeep
	if b.LogMaxSize != nil {
		a.LogMaxSize = int64(*b.LogMaxSize)
	}
	if b.LogKeep != nil {
		if *b.LogKeep < 1 {
			return "log_keep", fmt.Errorf("log_keep %d %w", *b.LogKeep, ErrNotPositive)
		}
		a.LogKeep = *b.LogKeep
	}
	if b.LogTimestamps != nil {
		a.LogTimestamps = *b.LogTimestamps
	}
	return "", nil
}
