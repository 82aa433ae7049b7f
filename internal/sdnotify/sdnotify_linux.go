package sdnotify

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// queueLen bounds the messages waiting for the consumer. A bot sends a few a
// second; anything beyond this is a flood, and only the newest state matters.
const queueLen = 256

// maxPath is the longest socket path sun_path holds with its final NUL.
const maxPath = len(unix.RawSockaddrUnix{}.Path) - 1

// Socket is a listening notify socket. Its reader goroutine runs from Listen
// until Close; it never blocks on the consumer.
type Socket struct {
	conn *net.UnixConn
	addr string      // NOTIFY_SOCKET value: a path, or "@name" for an abstract socket
	dir  string      // private directory holding the socket file, removed by Close ("" if abstract)
	file os.FileInfo // the socket file as bound, so Close removes no other
	uid  int         // only this sender UID is accepted

	msgs chan Message
	done chan struct{}

	delivered, overflow, foreign, oversized, noCreds, ignored atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// Listen opens a notify socket in a new private directory (mode 0700) inside
// dir, which is created 0700 if missing. When that path would not fit in a
// unix socket address (107 bytes), the directory goes under
// $XDG_RUNTIME_DIR, then os.TempDir(); when even that is too long, the socket
// is abstract ("@lifeline-notify-<random>"), where nothing but the UID check
// keeps other users out.
func Listen(dir string) (*Socket, error) {
	bases, err := baseDirs(dir)
	if err != nil {
		return nil, err
	}
	return listen(bases, true)
}

// ListenFor opens the notify socket of the bot named by key (the absolute
// path of its PID file) at an address that depends only on key and the
// agent's user: <base>/lifeline-notify-<hash>/sock, with base tried as in
// Listen, else the abstract "@lifeline-notify-<hash>". A bot outlives its
// agent still holding NOTIFY_SOCKET, so the next agent that adopts it must
// listen where that points.
//
// The directory must be a real directory (not a symlink), owned by us and
// mode 0700, or that base is passed over. A socket file already at the path
// is a dead agent's and is replaced; one that still answers belongs to a
// live agent (ErrInUse), and anything else there, a symlink above all, is
// refused (ErrNotSocket) rather than removed or followed.
func ListenFor(dir, key string) (*Socket, error) {
	bases, err := baseDirs(dir)
	if err != nil {
		return nil, err
	}
	return listenFixed(bases, fixedName(key), true)
}

// baseDirs lists where a private socket directory may go: dir (created 0700
// if missing), $XDG_RUNTIME_DIR, os.TempDir().
func baseDirs(dir string) ([]string, error) {
	var bases []string
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("listen notify socket: %w", err)
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("listen notify socket: %w", err)
		}
		bases = append(bases, abs)
	}
	if rt := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(rt) {
		bases = append(bases, rt)
	}
	return append(bases, os.TempDir()), nil
}

// fixedName is "lifeline-notify-" and 16 hex digits of a hash of the user
// and key: short enough for any base that fits a path at all, and another
// user's bot with the same PID file path gets another name in a shared /tmp.
func fixedName(key string) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(os.Geteuid()) + "\x00" + key))
	return "lifeline-notify-" + hex.EncodeToString(sum[:8])
}

// listenFixed binds name's socket in the first base where its private
// directory can be had, then as an abstract name if abstract is true. A
// stale, symlinked or busy socket path is an error at once, not a reason to
// move elsewhere: the bot's NOTIFY_SOCKET must not depend on it.
func listenFixed(bases []string, name string, abstract bool) (*Socket, error) {
	var errs []error
	for _, base := range bases {
		priv := filepath.Join(base, name)
		path := filepath.Join(priv, "sock")
		if len(path) > maxPath {
			continue
		}
		if err := privateDir(priv); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := clearStale(path); err != nil {
			return nil, fmt.Errorf("listen notify socket: %w", err)
		}
		s, err := bind(path)
		if err != nil {
			return nil, fmt.Errorf("listen notify socket: %w", err)
		}
		s.dir = priv
		return s, nil
	}
	if abstract {
		s, err := bind("@" + name)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no directory short enough for a socket path"))
	}
	return nil, fmt.Errorf("listen notify socket: %w", errors.Join(errs...))
}

// privateDir makes sure p is a directory of ours that no one else can enter:
// created 0700 if missing; if present, not a symlink, owned by us, 0700.
// Only then may a file in it be trusted to be ours, and removed.
func privateDir(p string) error {
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create notify dir: %w", err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("check notify dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm() != 0o700 {
		return fmt.Errorf("%s (%v): %w", p, fi.Mode(), ErrNotPrivate)
	}
	return nil
}

// clearStale removes a dead socket at path. Lstat never follows a symlink,
// and only a socket is removed; the directory is ours alone (privateDir), so
// nothing can swap the file between the check and the removal.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check notify socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s (%v): %w", path, fi.Mode(), ErrNotSocket)
	}
	// A datagram socket someone still reads accepts a connect; a dead
	// one's file refuses it.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: %w", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("check notify socket: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale notify socket: %w", err)
	}
	return nil
}

// listen tries a private directory in each of bases in turn, then an
// abstract socket if abstract is true.
func listen(bases []string, abstract bool) (*Socket, error) {
	var errs []error
	for _, base := range bases {
		// "/lifeline-notify-" plus MkdirTemp's at most 10 digits plus "/sock".
		if len(base)+len("/lifeline-notify-0123456789/sock") > maxPath {
			continue
		}
		priv, err := os.MkdirTemp(base, "lifeline-notify-") // mode 0700
		if err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(priv, "sock")
		s, err := bind(path)
		if err != nil {
			_ = os.Remove(priv)
			errs = append(errs, err)
			continue
		}
		s.dir = priv
		return s, nil
	}
	if abstract {
		var b [8]byte
		_, _ = rand.Read(b[:])
		s, err := bind("@lifeline-notify-" + hex.EncodeToString(b[:]))
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no directory short enough for a socket path"))
	}
	return nil, fmt.Errorf("listen notify socket: %w", errors.Join(errs...))
}

// bind creates the socket with SO_PASSCRED set before it has an address, so
// no datagram can ever arrive without its sender's credentials.
func bind(addr string) (*Socket, error) {
	var file os.FileInfo
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("create socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set SO_PASSCRED: %w", err)
	}
	// x/sys turns a leading '@' into the NUL of an abstract address.
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: addr}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", addr, err)
	}
	if !strings.HasPrefix(addr, "@") {
		// The directory is already 0700; this is for anyone who copies the
		// path elsewhere.
		if err := os.Chmod(addr, 0o600); err != nil {
			unix.Close(fd)
			_ = os.Remove(addr)
			return nil, fmt.Errorf("chmod socket: %w", err)
		}
		file, _ = os.Lstat(addr)
	}
	f := os.NewFile(uintptr(fd), addr)
	pc, err := net.FilePacketConn(f) // dups fd
	f.Close()
	if err != nil {
		if !strings.HasPrefix(addr, "@") {
			_ = os.Remove(addr)
		}
		return nil, fmt.Errorf("wrap socket: %w", err)
	}
	s := &Socket{
		conn: pc.(*net.UnixConn),
		addr: addr,
		file: file,
		uid:  os.Geteuid(),
		msgs: make(chan Message, queueLen),
		done: make(chan struct{}),
	}
	go s.read()
	return s, nil
}

// Addr is the value for NOTIFY_SOCKET: an absolute path, or "@name".
func (s *Socket) Addr() string { return s.addr }

// Messages delivers parsed datagrams from the agent's own UID, in arrival
// order, with the oldest dropped when the consumer falls behind. It is
// closed after Close.
func (s *Socket) Messages() <-chan Message { return s.msgs }

// Stats returns the reader's counters so far.
func (s *Socket) Stats() Stats {
	return Stats{
		Delivered: s.delivered.Load(),
		Overflow:  s.overflow.Load(),
		Foreign:   s.foreign.Load(),
		Oversized: s.oversized.Load(),
		NoCreds:   s.noCreds.Load(),
		Ignored:   s.ignored.Load(),
	}
}

// Close stops the reader, closes Messages and removes the socket file and its
// directory. It is safe to call more than once.
func (s *Socket) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.conn.Close()
		<-s.done
		if s.dir != "" {
			// Only the file this Socket bound: at a fixed path, the next
			// agent's socket may already be there.
			if fi, err := os.Lstat(s.addr); err == nil && s.file != nil && os.SameFile(fi, s.file) {
				_ = os.Remove(s.addr)
			}
			if err := os.Remove(s.dir); err != nil && !errors.Is(err, fs.ErrNotExist) &&
				!errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) && s.closeErr == nil {
				s.closeErr = fmt.Errorf("remove notify socket: %w", err)
			}
		}
	})
	return s.closeErr
}

// read takes datagrams off the socket until it is closed. One buffer one byte
// longer than MaxDatagram tells an oversized datagram from a full one even
// if the kernel did not set MSG_TRUNC.
func (s *Socket) read() {
	defer close(s.done)
	defer close(s.msgs)
	buf := make([]byte, MaxDatagram+1)
	// Room for the credentials and nothing more: file descriptors a sender
	// attaches (SCM_RIGHTS, which the kernel queues after the credentials)
	// do not fit, so the kernel closes them rather than install them in the
	// agent. creds() closes any that arrive all the same.
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (ENOBUFS, EINTR): keep serving; a short pause keeps
			// a persistent error from spinning a core.
			time.Sleep(time.Millisecond)
			continue
		}
		now := time.Now()
		cred, ok := creds(oob[:oobn])
		if !ok {
			s.noCreds.Add(1)
			continue
		}
		if int(cred.Uid) != s.uid {
			s.foreign.Add(1)
			continue
		}
		if n > MaxDatagram || flags&unix.MSG_TRUNC != 0 {
			s.oversized.Add(1)
			continue
		}
		m, known := parse(buf[:n])
		if !known {
			s.ignored.Add(1)
			continue
		}
		m.PID, m.UID, m.GID, m.Received = int(cred.Pid), int(cred.Uid), int(cred.Gid), now
		s.deliver(m)
	}
}

// deliver queues m without ever blocking: when the queue is full the oldest
// message is dropped. Only read sends, so after one receive there is room.
func (s *Socket) deliver(m Message) {
	select {
	case s.msgs <- m:
		s.delivered.Add(1)
		return
	default:
	}
	select {
	case <-s.msgs:
		s.overflow.Add(1)
	default: // the consumer just took one
	}
	select {
	case s.msgs <- m:
		s.delivered.Add(1)
	default:
		s.overflow.Add(1)
	}
}

// creds finds the sender's credentials among control messages and closes any
// file descriptors that came along.
func creds(oob []byte) (*unix.Ucred, bool) {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, false
	}
	var cred *unix.Ucred
	for i := range cmsgs {
		if fds, err := unix.ParseUnixRights(&cmsgs[i]); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			continue
		}
		if c, err := unix.ParseUnixCredentials(&cmsgs[i]); err == nil {
			cred = c
		}
	}
	return cred, cred != nil
}

// Descendant reports whether pid is ancestor or one of its descendants, by
// walking parent PIDs in /proc. The agent uses it to accept MAINPID=: the new
// main PID must be a process the bot started (as systemd requires it to be in
// the service's cgroup), not an arbitrary process of the same user.
func Descendant(pid, ancestor int) (bool, error) {
	for range 256 { // deeper trees than this are not a bot's
		if pid == ancestor {
			return true, nil
		}
		if pid <= 1 {
			return false, nil
		}
		ppid, err := parentPID(pid)
		if err != nil {
			return false, err
		}
		pid = ppid
	}
	return false, nil
}

// parentPID reads field 4 of /proc/PID/stat; the command name in field 2 may
// hold spaces and parentheses, so parsing starts after its last ')'.
func parentPID(pid int) (int, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read parent of %d: %w", pid, err)
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, fmt.Errorf("read parent of %d: malformed stat", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 2 {
		return 0, fmt.Errorf("read parent of %d: malformed stat", pid)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0, fmt.Errorf("read parent of %d: %w", pid, err)
	}
	return ppid, nil
}
