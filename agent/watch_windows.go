package agent

import (
	"errors"
	"fmt"
	"os/exec"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Built for Windows from its documented APIs, but never run: no machine
// this is developed or tested on has Windows.

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

	// The handles, set by newWatcher, used only through g (see handleGuard),
	// which closes them once nothing uses them.
	g    handleGuard
	proc windows.Handle // the bot; SYNCHRONIZE, query, terminate
	job  windows.Handle // its Job Object; 0 for an adopted bot
	stop windows.Handle // a manual-reset event, set by close to end a wait

	killed atomic.Bool // terminate ended it: its exit is reported as "killed"

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
	w.g.release = w.release
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
	if !w.g.beginWait() {
		return false
	}
	ev, err := windows.WaitForMultipleObjects([]windows.Handle{w.proc, w.stop}, false, windows.INFINITE)
	if w.g.endWait() {
		return false
	}
	return err == nil && ev == windows.WAIT_OBJECT_0
}

// reap returns the exit status of a process wait saw exit, for an adopted
// bot too: the handle gives its exit code. First it ends what the bot left
// in its job, as settle's SIGKILL to the group does on unix; the job, not a
// number, names them, so no stranger can be hit.
func (w *watcher) reap() (code int, sig string) {
	var status uint32
	got := false
	_ = w.g.use(func() error {
		if w.job != 0 {
			_ = windows.TerminateJobObject(w.job, killExitCode)
		}
		got = windows.GetExitCodeProcess(w.proc, &status) == nil
		return nil
	})
	if w.cmd != nil {
		_ = w.cmd.Wait() // releases os/exec's handle; the process has exited
		if !got && w.cmd.ProcessState != nil {
			status, got = uint32(w.cmd.ProcessState.ExitCode()), true
		}
	}
	switch {
	case !got:
		return -1, ""
	case w.killed.Load() && status == killExitCode:
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
	return w.g.use(func() error {
		w.killed.Store(true)
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
	})
}

// createTime is the creation time of the process held, in gopsutil's unit
// (ms since the epoch).
func (w *watcher) createTime() (ms int64, err error) {
	err = w.g.use(func() error {
		var created, exited, kernel, user windows.Filetime
		if err := windows.GetProcessTimes(w.proc, &created, &exited, &kernel, &user); err != nil {
			return fmt.Errorf("creation time of pid %d: %w", w.pid, err)
		}
		ms = created.Nanoseconds() / 1e6
		return nil
	})
	return ms, err
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
	if pid <= 0 {
		return false
	}
	found := false
	_ = w.g.use(func() error {
		if w.job == 0 {
			return nil // adopted: in no job of ours
		}
		list := w.ids
		err := windows.QueryInformationJobObject(w.job, windows.JobObjectBasicProcessIdList,
			uintptr(unsafe.Pointer(list)), uint32(unsafe.Sizeof(*list)), nil)
		if err != nil {
			return err
		}
		for _, id := range list.ids[:min(list.listed, maxJobList)] {
			if id == uintptr(pid) {
				found = true
				break
			}
		}
		return nil
	})
	return found
}

// close ends the watching, not the bot: the job is closed without killing
// it (see watcher).
func (w *watcher) close() { w.g.close(func() { _ = windows.SetEvent(w.stop) }) }

// release closes the handles: g calls it once nothing uses them, or
// newWatcher when it fails.
func (w *watcher) release() {
	for _, h := range []*windows.Handle{&w.proc, &w.job, &w.stop} {
		if *h != 0 {
			windows.CloseHandle(*h)
			*h = 0
		}
	}
}
