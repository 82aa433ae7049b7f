package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Demo is the built-in demo Worker. Every regular file dropped into Inbox
// (writers drop files atomically, so names starting with "." or ending in
// ".tmp" are ignored) is counted and hashed, the Result is posted as
// Outbox/<name>.json, and the inbox file is then removed.
//
// Posting is exactly-once across crashes: the result is written atomically
// before the inbox file is removed, and an item whose result is already in
// Outbox with the same SHA-256 is only removed. This holds as long as
// readers of Outbox leave results in place.
//
// The zero value with Inbox and Outbox set is ready to use. A Demo is not
// safe for concurrent use; a Bot calls it from one goroutine.
type Demo struct {
	// Inbox is the directory polled for items; created if missing.
	Inbox string
	// Outbox is the directory results are posted to; created if missing.
	Outbox string
	// Logger receives per-item logs at Debug level (slog.Default() if nil).
	Logger *slog.Logger

	queue []string // names from the last listing not yet processed
	swept bool     // leftover temporary files removed from Outbox

	// Counters for Stats.
	polled, processed, posted, already, errs int64
}

// Result is what Demo posts for each item.
type Result struct {
	Item  string `json:"item"`
	Bytes int64  `json:"bytes"`
	// Lines counts newline-terminated lines plus a final unterminated one.
	Lines int64 `json:"lines"`
	// Words counts runs of bytes other than ASCII white space.
	Words       int64     `json:"words"`
	SHA256      string    `json:"sha256"`
	ProcessedAt time.Time `json:"processed_at"`
	PID         int       `json:"pid"`
}

// Step lists Inbox when the previous listing is used up and processes one
// item from it. An item that fails is left in Inbox and retried on the next
// listing, so it cannot hold up the items after it.
func (d *Demo) Step(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if len(d.queue) == 0 {
		if err := d.list(); err != nil {
			d.errs++
			return false, err
		}
		if len(d.queue) == 0 {
			return false, nil
		}
	}
	name := d.queue[0]
	d.queue = d.queue[1:]
	if err := d.process(name); err != nil {
		d.errs++
		return len(d.queue) > 0, fmt.Errorf("process %s: %w", name, err)
	}
	return len(d.queue) > 0, nil
}

// Stats reports the demo's counters: inbox listings (polled), items done
// (processed), results written (posted), items found already posted by an
// earlier run (already_posted) and failures (errors).
func (d *Demo) Stats() map[string]int64 {
	return map[string]int64{
		"polled":         d.polled,
		"processed":      d.processed,
		"posted":         d.posted,
		"already_posted": d.already,
		"errors":         d.errs,
	}
}

func (d *Demo) list() error {
	if d.Inbox == "" || d.Outbox == "" {
		return errors.New("demo needs an inbox and an outbox directory")
	}
	for _, dir := range []string{d.Inbox, d.Outbox} {
		// Private like the rest of data/: items and results may hold
		// whatever the bot works on.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create directory: %w", err)
		}
	}
	in, err := os.Stat(d.Inbox)
	if err != nil {
		return fmt.Errorf("stat inbox: %w", err)
	}
	if out, err := os.Stat(d.Outbox); err == nil && os.SameFile(in, out) {
		// Results would come back as items, forever.
		return fmt.Errorf("inbox and outbox are the same directory %s", d.Inbox)
	}
	if !d.swept {
		d.sweep()
		d.swept = true
	}
	entries, err := os.ReadDir(d.Inbox) // sorted by name
	if err != nil {
		return fmt.Errorf("list inbox: %w", err)
	}
	d.polled++
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && !strings.HasPrefix(n, ".") && !strings.HasSuffix(n, ".tmp") {
			d.queue = append(d.queue, n)
		}
	}
	return nil
}

// sweep removes temporary results a killed predecessor left in Outbox. Their
// items are still in Inbox and will be posted again.
func (d *Demo) sweep() {
	entries, err := os.ReadDir(d.Outbox)
	if err != nil {
		return // list() reports a broken outbox soon enough
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".json.tmp") {
			_ = os.Remove(filepath.Join(d.Outbox, n))
		}
	}
}

func (d *Demo) process(name string) error {
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	src := filepath.Join(d.Inbox, name)
	res, err := summarize(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // taken away since the listing
	}
	if err != nil {
		return err
	}
	res.Item = name
	dst := filepath.Join(d.Outbox, name+".json")
	prev, err := postedSHA(dst)
	if err != nil {
		return err
	}
	if prev == res.SHA256 {
		// Posted by a run that died between the rename and the removal.
		d.already++
		log.Debug("item already posted", "item", name)
	} else {
		res.ProcessedAt = time.Now().UTC()
		res.PID = os.Getpid()
		data, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		if err := writeAtomic(dst, data); err != nil {
			return err
		}
		d.posted++
		log.Debug("item posted", "item", name, "bytes", res.Bytes, "result", dst)
	}
	if err := os.Remove(src); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove item: %w", err)
	}
	d.processed++
	return nil
}

// summarize counts and hashes the file at path in one pass.
func summarize(path string) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("open item: %w", err)
	}
	defer f.Close()
	var c counter
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(h, &c), f); err != nil {
		return Result{}, fmt.Errorf("read item: %w", err)
	}
	return Result{Bytes: c.bytes, Lines: c.lineCount(), Words: c.words, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// postedSHA returns the SHA-256 recorded in an existing result, or "" when
// there is none (or it is unreadable JSON, which posting replaces).
func postedSHA(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read result: %w", err)
	}
	var r Result
	if json.Unmarshal(data, &r) != nil {
		return "", nil
	}
	return r.SHA256, nil
}

// writeAtomic writes data to path through a synced temporary file and a
// rename, so path holds either nothing or all of data, even after a crash.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write result: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync outbox: %w", err)
	}
	return nil
}

// counter counts bytes, lines and words of what is written to it.
type counter struct {
	bytes, lines, words int64
	inWord              bool
	last                byte
}

func (c *counter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			c.lines++
		}
		space := b == ' ' || b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r'
		if !space && !c.inWord {
			c.words++
		}
		c.inWord = !space
	}
	if len(p) > 0 {
		c.bytes += int64(len(p))
		c.last = p[len(p)-1]
	}
	return len(p), nil
}

func (c *counter) lineCount() int64 {
	if c.bytes > 0 && c.last != '\n' {
		return c.lines + 1
	}
	return c.lines
}
