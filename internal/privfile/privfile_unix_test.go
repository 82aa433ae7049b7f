//go:build unix

package privfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A symbolic link at the path is refused and its target left as it was.
func TestSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("theirs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "bot.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenAppend(link); !errors.Is(err, ErrSymlink) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("OpenAppend on a symlink = %v, want ErrSymlink", err)
	}
	if data, _ := os.ReadFile(target); string(data) != "theirs\n" {
		t.Fatalf("target now holds %q", data)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
		t.Fatalf("target mode changed to %v", fi.Mode())
	}
}

// A new log is created 0600 and appended to; our own log left readable by
// others is made 0600; /dev/null is the user's choice and left alone.
func TestAppendAndMadePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bot.log")
	for _, line := range []string{"one\n", "two\n"} {
		f, err := OpenAppend(path)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line)
		f.Close()
	}
	if data, _ := os.ReadFile(path); string(data) != "one\ntwo\n" {
		t.Fatalf("log holds %q", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("new log mode %v, want 0600", fi.Mode())
	}
	old := filepath.Join(dir, "old.log")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenAppend(old)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(old); fi.Mode().Perm() != 0o600 {
		t.Fatalf("old log mode %v, want 0600", fi.Mode())
	}
	before, err := os.Stat(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if f, err = OpenAppend(os.DevNull); err != nil {
		t.Fatalf("OpenAppend(%s): %v", os.DevNull, err)
	}
	f.Close()
	if after, _ := os.Stat(os.DevNull); after.Mode() != before.Mode() {
		t.Fatalf("%s mode changed from %v to %v", os.DevNull, before.Mode(), after.Mode())
	}
}
