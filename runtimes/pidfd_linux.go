package runtimes

import (
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// openProcess returns a pidfd for the container's init process when this
// process can see it (same PID namespace, enough privileges), or -1. The pid
// from the engine is only trusted after the process behind the pidfd proved
// to live in the container's cgroup: a pidfd keeps referring to the same
// process, so a recycled pid can never be signalled by mistake.
func openProcess(pid int, containerID string) int {
	if pid <= 0 || containerID == "" {
		return -1
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1
	}
	cg, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	// Signal 0 after the read: the process was alive throughout, so the
	// cgroup file was its own.
	if err != nil || !strings.Contains(string(cg), containerID) || unix.PidfdSendSignal(fd, 0, nil, 0) != nil {
		_ = unix.Close(fd)
		return -1
	}
	return fd
}

// killProcess sends SIGKILL through a pidfd from openProcess. Killing a
// container's init process ends every process of the container.
func killProcess(fd int) bool {
	return fd >= 0 && unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil
}

func closeProcess(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// waitExit waits at most d for the process behind fd to exit and returns when
// it saw the exit: the kernel's view, earlier and more exact than the
// engine's record of the container's end.
func waitExit(fd int, d time.Duration) (time.Time, bool) {
	if fd < 0 {
		return time.Time{}, false
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return time.Time{}, false
		}
		n, err := unix.Poll(fds, ms)
		switch {
		case err == unix.EINTR:
		case err != nil:
			return time.Time{}, false
		case n > 0:
			return time.Now(), true
		}
	}
}

// setPipeSize asks for a larger buffer of the FIFO f; the default stays when
// the system refuses (beyond /proc/sys/fs/pipe-max-size).
func setPipeSize(f *os.File, size int) {
	if raw, err := f.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size) })
	}
}
