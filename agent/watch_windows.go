package agent

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Built for Windows from its documented APIs, but never run: no machine
// this is developed or tested on has Windows.

// errWatcherClosed: the watcher's handles are closed; it can no longer
// prove, stop or read anything.
var errWatcherClosed = errors.New("watcher is closed")

// watcher follows one bot process through a handle to it. The handle is
// the bot's identity: while it is open, Windows does not give the bot's PID
// to another process, so whatever is done through it (wait, terminate,
// read its creation time and exit code) reaches the bot or nothing. Its exit
// is an event the wait blocks on, never polled, for a bot this agent started
// and for one it adopted alike.
//
// A bot this agent started is also in a Job Object of its own, with every
// process it spawns, so that its whole tree can be ended. The job is not
// JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: the bot outlives its agent, and the
// job merely lapses when the agent's handle closes.
type watcher struct {
	pid int
	cmd *exec.Cmd // nil when adopted

	// mu keeps the handles from being closed while they are used. The one
	// long use, wait's, is marked by waiting instead: close only sets stop
	// then, and wait closes the handles once it has returned (Windows leaves
	// closing a handle that is being waited on undefined).
	mu      sync.Mutex
	proc    windows.Handle // the bot; SYNCHRONIZE, query, terminate
	job     windows.Handle // its Job Object; 0 for an adopted bot
	stop    windows.Handle // a manual-reset event, set by close
	waiting bool
	closed  bool
	killed  bool // terminate ended it: its exit is reported as "killed"

	// ids is inJob's buffer. It lives on the heap, where nothing moves
	// it: the call fills it through an address passed as a plain number.
	ids *jobIDs
}

func newWatcher(pid int, cmd *exec.Cmd) (*watcher, error) {
	access := uint32(windows.SYNCHRONIZE | windows.PROCESS_QUERY_LIMITED_INFORMATION | windows.PROCESS_TERMINATE)
	if cmd != nil {
		access |= windows.PROCESS_SET_QUOTA // AssignProcessToJobObject asks for it
	}
	h, err := windows.OpenProcess(access, false, uint32(pid))
	if err != nil {
		return nil, fmt.Errorf("open process %d: %w", pid, err)
	}
	w := &watcher{pid: pid, cmd: cmd, proc: h}
	if w.stop, err = windows.CreateEvent(nil, 1, 0, nil); err != nil {
		w.release()
		return nil, fmt.Errorf("create event: %w", err)
	}
	if cmd != nil {
		if err := w.enterJob(); err != nil {
			w.release()
			return nil, err
		}
	}
	return w, nil
}

// enterJob puts the bot this agent just started in a new Job Object, then
// lets it run if sysProcAttr had it start suspended: every process it
// spawns from then on is in the job too, unable to break away (the job does
// not allow it).
func (w *watcher) enterJob() error {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return fmt.Errorf("create job object: %w", err)
	}
	w.job = job
	w.ids = new(jobIDs)
	if err := windows.AssignProcessToJobObject(job, w.proc); err != nil {
		return fmt.Errorf("put pid %d in its job object: %w", w.pid, err)
	}
	if a := w.cmd.SysProcAttr; a != nil && a.CreationFlags&windows.CREATE_SUSPENDED != 0 {
		if err := resumeProcess(w.pid); err != nil {
			return fmt.Errorf("resume pid %d: %w", w.pid, err)
		}
	}
	return nil
}

// errNoThread: a process started suspended showed no thread to resume.
var errNoThread = errors.New("no thread to resume")

// resumeProcess resumes the threads of a process started suspended, which
// has just the one: os/exec closes the thread handle CreateProcess returns,
// so the thread is found through a Toolhelp snapshot.
func resumeProcess(pid int) error {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return fmt.Errorf("snapshot threads: %w", err)
	}
	defer windows.CloseHandle(snap)
	e := windows.ThreadEntry32{Size: uint32(unsafe.Sizeof(windows.ThreadEntry32{}))}
	resumed := 0
	for err = windows.Thread32First(snap, &e); err == nil; err = windows.Thread32Next(snap, &e) {
		if e.OwnerProcessID != uint32(pid) {
			continue
		}
		t, err := windows.OpenThread(windows.THREAD_SUSPEND_RESUME, false, e.ThreadID)
		if err != nil {
			return fmt.Errorf("open thread %d: %w", e.ThreadID, err)
		}
		_, err = windows.ResumeThread(t)
		windows.CloseHandle(t)
		if err != nil {
			return fmt.Errorf("resume thread %d: %w", e.ThreadID, err)
		}
		resumed++
	}
	if !errors.Is(err, windows.ERROR_NO_MORE_FILES) {
		return fmt.Errorf("list threads: %w", err)
	}
	if resumed == 0 {
		return errNoThread
	}
	return nil
}

// wait blocks until the process exits, or returns ok false once close is
// called: it waits on the process handle and on close's event at once.
// Nothing is reaped: the handle keeps the exit code and the PID until reap
// and close.
func (w *watcher) wait() (ok bool) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.waiting = true
	handles := []windows.Handle{w.proc, w.stop}
	w.mu.Unlock()

	ev, err := windows.WaitForMultipleObjects(handles, false, windows.INFINITE)

	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiting = false
	if w.closed {
		w.release()
		return false
	}
	return err == nil && ev == windows.WAIT_OBJECT_0
}

// reap returns the exit status of a process wait saw exit, for an adopted
// bot too: the handle gives its exit code. First it ends what the bot left
// in its job, as settle's SIGKILL to the group does on unix; the job, not a
// number, names them, so no stranger can be hit.
func (w *watcher) reap() (code int, sig string) {
	w.mu.Lock()
	var status uint32
	got := false
	killed := w.killed
	if !w.closed {
		if w.job != 0 {
			_ = windows.TerminateJobObject(w.job, killExitCode)
		}
		got = windows.GetExitCodeProcess(w.proc, &status) == nil
	}
	w.mu.Unlock()
	if w.cmd != nil {
		_ = w.cmd.Wait() // releases os/exec's handle; the process has exited
		if !got && w.cmd.ProcessState != nil {
			status, got = uint32(w.cmd.ProcessState.ExitCode()), true
		}
	}
	switch {
	case !got:
		return -1, ""
	case killed && status == killExitCode:
		return -1, "killed"
	}
	return int(status), ""
}

// terminate ends the bot's whole tree through its Job Object.
//
// An adopted bot is in no job of ours: the one its first agent made is
// unnamed and out of reach. So only the bot itself is ended, and what it
// spawned runs on until it exits: Windows has no process group to end them
// by, and a process's recorded parent PID may by now be someone else's, so
// they cannot be told apart safely.
func (w *watcher) terminate() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errWatcherClosed
	}
	w.killed = true
	if w.job != 0 {
		if err := windows.TerminateJobObject(w.job, killExitCode); err != nil {
			return fmt.Errorf("terminate job of pid %d: %w", w.pid, err)
		}
		return nil
	}
	if err := windows.TerminateProcess(w.proc, killExitCode); err != nil {
		return fmt.Errorf("terminate pid %d: %w", w.pid, err)
	}
	return nil
}

// createTime is the creation time of the process held, in gopsutil's unit
// (ms since the epoch).
func (w *watcher) createTime() (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errWatcherClosed
	}
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(w.proc, &created, &exited, &kernel, &user); err != nil {
		return 0, fmt.Errorf("creation time of pid %d: %w", w.pid, err)
	}
	return created.Nanoseconds() / 1e6, nil
}

// maxJobList bounds the process list inJob reads: a heartbeat from beyond
// the first maxJobList processes of a bot's tree is not counted as the
// bot's (the bot's own always is, see owns).
const maxJobList = 1024

// jobIDs is JOBOBJECT_BASIC_PROCESS_ID_LIST with room for maxJobList PIDs.
type jobIDs struct {
	assigned, listed uint32
	ids              [maxJobList]uintptr
}

// inJob reports whether pid is a live process in the bot's Job Object. The
// job lists only processes still running, so a listed PID cannot be a
// recycled one.
func (w *watcher) inJob(pid int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.job == 0 || pid <= 0 {
		return false
	}
	list := w.ids
	err := windows.QueryInformationJobObject(w.job, windows.JobObjectBasicProcessIdList,
		uintptr(unsafe.Pointer(list)), uint32(unsafe.Sizeof(*list)), nil)
	if err != nil {
		return false
	}
	for _, id := range list.ids[:min(list.listed, maxJobList)] {
		if id == uintptr(pid) {
			return true
		}
	}
	return false
}

// close ends the watching, not the bot: the job is closed without killing
// it (see watcher).
func (w *watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	if w.stop != 0 {
		_ = windows.SetEvent(w.stop)
	}
	if !w.waiting {
		w.release()
	}
}

// release closes the handles; the caller holds mu, or is newWatcher.
func (w *watcher) release() {
	for _, h := range []*windows.Handle{&w.proc, &w.job, &w.stop} {
		if *h != 0 {
			windows.CloseHandle(*h)
			*h = 0
		}
	}
}
