package bot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sha(content string) string {
	h := sha256.Sum256([]byte(content))
	return hex.EncodeToString(h[:])
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// newDemo returns a Demo on fresh directories, the inbox created and filled
// with files (name to content).
func newDemo(t *testing.T, files map[string]string) *Demo {
	t.Helper()
	dir := t.TempDir()
	d := &Demo{Inbox: filepath.Join(dir, "inbox"), Outbox: filepath.Join(dir, "outbox"), Logger: testLogger(t)}
	if err := os.MkdirAll(d.Inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		writeFile(t, filepath.Join(d.Inbox, name), content)
	}
	return d
}

// drain runs Steps until a listing of the inbox gets nothing done, and
// returns the errors met on the way.
func drain(t *testing.T, d *Demo) []error {
	t.Helper()
	var errs []error
	for range 100 {
		idle, processed := len(d.queue) == 0, d.processed
		more, err := d.Step(t.Context())
		if err != nil {
			errs = append(errs, err)
		}
		if idle && !more && d.processed == processed {
			return errs
		}
	}
	t.Fatal("demo never ran out of work")
	return nil
}

func readResult(t *testing.T, path string) Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("result %s: %v", path, err)
	}
	return r
}

func TestDemoProcessesItems(t *testing.T) {
	content := "hello world\nfoo  bar\tbaz\nlast line"
	d := newDemo(t, map[string]string{
		"a.txt":        content,
		"b.txt":        "",
		".hidden":      "not an item",
		"partial.tmp":  "being written",
		"c.txt.tmp":    "being written",
		".d.json.tmp":  "not ours",
		"zzz-last.csv": "x,y\n",
	})
	if err := os.Mkdir(filepath.Join(d.Inbox, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}

	if errs := drain(t, d); errs != nil {
		t.Fatalf("errors: %v", errs)
	}

	if got, want := names(t, d.Inbox), []string{".d.json.tmp", ".hidden", "c.txt.tmp", "partial.tmp", "subdir"}; !slices.Equal(got, want) {
		t.Errorf("inbox left %v, want %v", got, want)
	}
	if got, want := names(t, d.Outbox), []string{"a.txt.json", "b.txt.json", "zzz-last.csv.json"}; !slices.Equal(got, want) {
		t.Errorf("outbox holds %v, want %v", got, want)
	}
	if fi, err := os.Stat(filepath.Join(d.Outbox, "a.txt.json")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("result mode %v, want 0600: results are the user's alone", fi.Mode().Perm())
	}
	r := readResult(t, filepath.Join(d.Outbox, "a.txt.json"))
	want := Result{Item: "a.txt", Bytes: int64(len(content)), Lines: 3, Words: 7, SHA256: sha(content), PID: os.Getpid()}
	got := r
	got.ProcessedAt = time.Time{}
	if got != want {
		t.Errorf("result = %+v, want %+v", got, want)
	}
	if r.ProcessedAt.IsZero() {
		t.Error("result has no processed_at")
	}
	if r := readResult(t, filepath.Join(d.Outbox, "b.txt.json")); r.Bytes != 0 || r.Lines != 0 || r.Words != 0 || r.SHA256 != sha("") {
		t.Errorf("empty item result = %+v", r)
	}
	st := d.Stats()
	if st["processed"] != 3 || st["posted"] != 3 || st["already_posted"] != 0 || st["errors"] != 0 || st["polled"] < 1 {
		t.Errorf("stats = %v", st)
	}
}

func TestDemoCreatesDirectories(t *testing.T) {
	dir := t.TempDir()
	d := &Demo{Inbox: filepath.Join(dir, "a", "inbox"), Outbox: filepath.Join(dir, "b", "outbox"), Logger: testLogger(t)}
	if errs := drain(t, d); errs != nil {
		t.Fatalf("errors: %v", errs)
	}
	for _, p := range []string{d.Inbox, d.Outbox} {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("%s not created: %v", p, err)
		} else if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700: items are the user's alone", p, fi.Mode().Perm())
		}
	}
}

// TestDemoExactlyOnceAfterCrash restarts a Demo on the state a killed one
// leaves behind at each point of posting an item.
func TestDemoExactlyOnceAfterCrash(t *testing.T) {
	const content = "one two three\n"
	posted := `{"item":"x.txt","bytes":14,"lines":1,"words":3,"sha256":"` + sha(content) + `","processed_at":"2026-01-02T03:04:05Z","pid":4242}`
	for _, tc := range []struct {
		name       string
		outbox     map[string]string // left behind by the killed run
		wantPosted int64
		wantResult string // outbox x.txt.json afterwards; "" means a fresh result
	}{
		{name: "before writing", wantPosted: 1},
		{name: "temporary file half written", outbox: map[string]string{".x.txt.json.tmp": `{"item":"x.t`}, wantPosted: 1},
		{name: "after rename, before removing the item", outbox: map[string]string{"x.txt.json": posted}, wantResult: posted},
		{
			name:       "an older item of the same name posted",
			outbox:     map[string]string{"x.txt.json": strings.Replace(posted, sha(content), sha("older"), 1)},
			wantPosted: 1,
		},
		{name: "unreadable result", outbox: map[string]string{"x.txt.json": "{garbage"}, wantPosted: 1},
		{name: "other leftovers", outbox: map[string]string{".gone.txt.json.tmp": "x", "x.txt.json": posted}, wantResult: posted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDemo(t, map[string]string{"x.txt": content})
			if err := os.MkdirAll(d.Outbox, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range tc.outbox {
				writeFile(t, filepath.Join(d.Outbox, name), data)
			}

			if errs := drain(t, d); errs != nil {
				t.Fatalf("errors: %v", errs)
			}

			if got := names(t, d.Inbox); len(got) != 0 {
				t.Errorf("inbox left %v", got)
			}
			if got := names(t, d.Outbox); !slices.Equal(got, []string{"x.txt.json"}) {
				t.Errorf("outbox holds %v, want only x.txt.json", got)
			}
			data, _ := os.ReadFile(filepath.Join(d.Outbox, "x.txt.json"))
			if tc.wantResult != "" && string(data) != tc.wantResult {
				t.Errorf("result was re-posted: %s", data)
			}
			if r := readResult(t, filepath.Join(d.Outbox, "x.txt.json")); r.SHA256 != sha(content) {
				t.Errorf("result sha256 %s, want %s", r.SHA256, sha(content))
			}
			st := d.Stats()
			if st["posted"] != tc.wantPosted || st["processed"] != 1 || st["already_posted"] != 1-tc.wantPosted {
				t.Errorf("stats = %v, want posted %d", st, tc.wantPosted)
			}
		})
	}
}

func TestDemoFailingItemDoesNotBlockOthers(t *testing.T) {
	d := newDemo(t, map[string]string{"a": "first", "b": "second"})
	// A directory where a's result must go makes a fail on every try.
	if err := os.MkdirAll(filepath.Join(d.Outbox, "a.json", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	errs := drain(t, d)
	if len(errs) == 0 {
		t.Fatal("no error for an item that cannot be posted")
	}
	if got := names(t, d.Inbox); !slices.Equal(got, []string{"a"}) {
		t.Errorf("inbox left %v, want only the failing item", got)
	}
	if r := readResult(t, filepath.Join(d.Outbox, "b.json")); r.SHA256 != sha("second") {
		t.Errorf("b result = %+v", r)
	}
	if st := d.Stats(); st["errors"] != int64(len(errs)) || st["posted"] != 1 {
		t.Errorf("stats = %v after %d errors", st, len(errs))
	}
}

func TestDemoRefusesSameInboxAndOutbox(t *testing.T) {
	dir := t.TempDir()
	d := &Demo{Inbox: dir, Outbox: filepath.Join(dir, "."), Logger: testLogger(t)}
	if _, err := d.Step(t.Context()); err == nil {
		t.Fatal("Step with inbox = outbox succeeded")
	}
	if _, err := (&Demo{}).Step(t.Context()); err == nil {
		t.Fatal("Step without directories succeeded")
	}
}

func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		in           string
		lines, words int64
	}{
		{"", 0, 0},
		{"a", 1, 1},
		{"a\n", 1, 1},
		{"\n\n", 2, 0},
		{"  x  ", 1, 1},
		{"a b\n c", 2, 3},
		{"tab\tsep\r\nline\vfeed\fform", 2, 5},
		{"héllo wörld ✓\n", 1, 3},
		{strings.Repeat("word ", 20000) + "end", 1, 20001},
	} {
		var whole, bytewise counter
		whole.Write([]byte(tc.in))
		// One byte at a time, so words and lines span writes.
		if _, err := io.Copy(&bytewise, iotest.OneByteReader(strings.NewReader(tc.in))); err != nil {
			t.Fatal(err)
		}
		for _, c := range []counter{whole, bytewise} {
			if c.bytes != int64(len(tc.in)) || c.lineCount() != tc.lines || c.words != tc.words {
				t.Errorf("%.20q: bytes %d lines %d words %d, want %d %d %d",
					tc.in, c.bytes, c.lineCount(), c.words, len(tc.in), tc.lines, tc.words)
			}
		}
	}
}
