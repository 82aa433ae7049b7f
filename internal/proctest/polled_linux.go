package proctest

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Polled returns the descriptors in this process's epoll sets (the Go
// runtime's poller among them), read from /proc/self/fdinfo: for tests of
// what the runtime waits on. Empty if there is no epoll set at all.
func Polled() map[int]bool {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	fds := make(map[int]bool)
	for _, e := range ents {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		f, err := os.Open("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "tfd:" {
				if fd, err := strconv.Atoi(fields[1]); err == nil {
					fds[fd] = true
				}
			}
		}
		f.Close()
	}
	return fds
}
