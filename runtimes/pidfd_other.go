//go:build !linux

package runtimes

import (
	"os"
	"time"
)

// Without pidfds (Linux only) no process is ever visible: every caller then
// relies on the engine alone, to kill the container and to record its exit.

func openProcess(pid int, containerID string) int { return -1 }

func killProcess(fd int) bool { return false }

func closeProcess(fd int) {}

func waitExit(fd int, d time.Duration) (time.Time, bool) { return time.Time{}, false }

func setPipeSize(f *os.File, size int) {}
