//go:build !unix

package runtimes

import "errors"

// The executor needs a Unix host (FIFOs, Unix sockets shared with Linux
// containers); these let the rest of the tree, the CLI among it, build
// elsewhere.

func peekIdle(fd uintptr) bool { return true }

func mkfifo(path string, mode uint32) error {
	return errors.New("the executor needs a Unix host (FIFOs)")
}
