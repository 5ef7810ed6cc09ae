//go:build unix

package runtimes

import (
	"errors"
	"syscall"
)

// peekIdle reports whether the socket fd has nothing to read and is not at
// its end: a non-blocking peek that would block.
func peekIdle(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return errors.Is(err, syscall.EAGAIN)
}

func mkfifo(path string, mode uint32) error { return syscall.Mkfifo(path, mode) }
