//go:build unix

package logcap

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bot.log")
	// A log left readable by an older version is made private.
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "pipes")
	if err := os.Mkdir(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	c := mustNew(t, Config{Path: path, MaxSize: 4096, FIFODir: fifo})
	runBot(t, c, "lines", "LOGCAP_N=500")
	closeAndRead(t, c, path)
	backups, current := logFiles(t, dir)
	if len(backups) == 0 {
		t.Fatal("no rotation")
	}
	for _, f := range append(backups, current, filepath.Join(fifo, "stdout"), filepath.Join(fifo, "stderr")) {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v; want 0600", f, fi.Mode(), err)
		}
	}
	if fi, _ := os.Stat(fifo); fi.Mode().Perm() != 0o700 {
		t.Fatalf("fifo dir mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestSymlinkIsRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "bot.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Path: link}); !errors.Is(err, ErrSymlink) {
		t.Fatalf("New on a symlinked log = %v, want ErrSymlink", err)
	}
	fifo := filepath.Join(dir, "pipes")
	os.Mkdir(fifo, 0o700)
	if err := os.Symlink(target, filepath.Join(fifo, "stdout")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Path: filepath.Join(dir, "ok.log"), FIFODir: fifo}); !errors.Is(err, ErrSymlink) {
		t.Fatalf("New with a symlinked fifo = %v, want ErrSymlink", err)
	}
	linkDir := filepath.Join(dir, "linkdir")
	os.Symlink(fifo, linkDir)
	if _, err := New(Config{Path: filepath.Join(dir, "ok2.log"), FIFODir: linkDir}); !errors.Is(err, ErrSymlink) {
		t.Fatalf("New with a symlinked fifo dir = %v, want ErrSymlink", err)
	}
	// Nothing changed behind the links.
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Fatalf("target now holds %q", b)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
		t.Fatalf("target mode changed to %v", fi.Mode().Perm())
	}
	// A regular file where a pipe belongs is not used either.
	os.Remove(filepath.Join(fifo, "stdout"))
	os.WriteFile(filepath.Join(fifo, "stdout"), nil, 0o600)
	if _, err := New(Config{Path: filepath.Join(dir, "ok3.log"), FIFODir: fifo}); !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("New with a regular file as fifo = %v, want ErrNotPrivate", err)
	}
}
