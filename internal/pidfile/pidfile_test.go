package pidfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // 0: must be refused as garbage
	}{
		{"", 0},
		{" \n\t", 0},
		{"abc", 0},
		{"12abc", 0},
		{"-5", 0},
		{"+5", 0},
		{"0", 0},
		{"1", 0},
		{"1\n", 0},
		{"4 2", 0},
		{"0x10", 0},
		{"4.2", 0},
		{"١٢٣", 0}, // Arabic-Indic digits
		{"99999999999", 0},
		{strconv.FormatInt(maxPID+1, 10), 0}, // above the platform's largest PID
		{strings.Repeat("9", 100), 0},
		{"2", 2},
		{"4242\n", 4242},
		{"  4242 \r\n", 4242},
		{"4242\r\n", 4242}, // written by a Windows editor, or by lifeline on Windows
		{"\r\n4242\r\n\r\n", 4242},
		{"4242\r", 4242},
		{"42\r\n42", 0},
		{"\r\n", 0},
		{"007", 7},
		{"4194304", 4194304},
		{strconv.Itoa(maxPID), maxPID},
	} {
		got, err := Parse([]byte(tc.in))
		if tc.want == 0 {
			if !errors.Is(err, ErrGarbage) {
				t.Errorf("Parse(%q) = %d, %v; want ErrGarbage", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "0", "1", "2", "4242\n", " 42 ", "-1", "abc", "99999999999", "4194304", "\u00a012\u0085", "4242\r\n", "42\r42"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pid, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrGarbage) || pid != 0 {
				t.Fatalf("Parse(%q) = %d, %v; want 0 and ErrGarbage", data, pid, err)
			}
			return
		}
		// Whatever Parse accepts is a plain decimal number that can be
		// signalled without hitting a process group or init.
		if pid <= 1 || pid > maxPID {
			t.Fatalf("Parse(%q) = %d, out of range", data, pid)
		}
		s := strings.TrimLeft(strings.TrimSpace(string(data)), "0")
		if s != strconv.Itoa(pid) {
			t.Fatalf("Parse(%q) = %d, but the text is %q", data, pid, s)
		}
		for _, end := range []string{"\n", "\r\n", lineEnd} {
			if again, err := Parse([]byte(strconv.Itoa(pid) + end)); err != nil || again != pid {
				t.Fatalf("Parse of written pid %q = %d, %v", strconv.Itoa(pid)+end, again, err)
			}
		}
	})
}

func mustAcquire(t *testing.T, path string) *File {
	t.Helper()
	f, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestAcquire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "bot.pid")
	f := mustAcquire(t, path)
	if f.Path() != path {
		t.Errorf("Path() = %q", f.Path())
	}

	// Locked but not yet written: the refusal cannot name a PID.
	_, err := Acquire(path)
	var locked *LockedError
	if !errors.As(err, &locked) || locked.PID != 0 || locked.Path != path {
		t.Fatalf("Acquire of a held file = %v, want a LockedError without pid", err)
	}

	if err := f.WritePID(123456); err != nil {
		t.Fatal(err)
	}
	if err := f.WritePID(4242); err != nil { // shorter: the tail must go
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "4242"+lineEnd {
		t.Errorf("pid file holds %q, want %q", data, "4242"+lineEnd)
	}
	_, err = Acquire(path)
	if !errors.As(err, &locked) || locked.PID != 4242 || !strings.Contains(err.Error(), "4242") {
		t.Fatalf("Acquire of a held file = %v, want a LockedError naming 4242", err)
	}

	// Close keeps the file but frees the lock for the next owner.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Close removed the file: %v", err)
	}
	g := mustAcquire(t, path)
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove left the file: %v", err)
	}
}

func TestRemoveSparesReplacement(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.pid")
	f := mustAcquire(t, path)
	// Someone replaced the file: it is no longer ours to delete.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "999\n" {
		t.Errorf("replacement file = %q, %v after Remove", data, err)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()

	if _, err := Read(filepath.Join(dir, "missing.pid")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing file = %v, want fs.ErrNotExist", err)
	}

	stale := filepath.Join(dir, "stale.pid")
	if err := os.WriteFile(stale, []byte("4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if pid, err := Read(stale); !errors.Is(err, ErrStale) || pid != 0 {
		t.Errorf("Read of an unlocked file = %d, %v; want ErrStale", pid, err)
	}
	// Reading must not leave the stale file locked.
	mustAcquire(t, stale)

	held := filepath.Join(dir, "held.pid")
	f := mustAcquire(t, held)
	if _, err := Read(held); !errors.Is(err, ErrGarbage) {
		t.Errorf("Read of a locked, unwritten file = %v, want ErrGarbage", err)
	}
	if err := f.WritePID(4242); err != nil {
		t.Fatal(err)
	}
	if pid, err := Read(held); err != nil || pid != 4242 {
		t.Errorf("Read of a held file = %d, %v; want 4242", pid, err)
	}

	garbage := filepath.Join(dir, "garbage.pid")
	g := mustAcquire(t, garbage)
	if _, err := g.Descriptor().WriteAt([]byte("1\n"), 0); err != nil {
		t.Fatal(err)
	}
	if pid, err := Read(garbage); !errors.Is(err, ErrGarbage) || pid != 0 {
		t.Errorf("Read of a held file naming pid 1 = %d, %v; want ErrGarbage", pid, err)
	}
}
