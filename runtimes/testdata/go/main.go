// Test function for the executor tests: one handler, the operation is in the event.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type Event struct {
	Op     string         `json:"op"`
	Name   string         `json:"name"`
	S      float64        `json:"s"`
	N      int            `json:"n"`
	Code   int            `json:"code"`
	Lines  int            `json:"lines"`
	Nested map[string]any `json:"nested,omitempty"`
	Say    []string       `json:"say"`  // written before the operation
	Then   []string       `json:"then"` // written after a sleep
}

func Handle(ctx context.Context, ev Event) (any, error) {
	for _, line := range ev.Say {
		fmt.Println(line)
	}
	switch ev.Op {
	case "hello":
		fmt.Println("hello from go")
		return map[string]string{"hello": ev.Name}, nil
	case "context":
		dl, _ := ctx.Deadline()
		id, _ := ctx.Value("aws_request_id").(string)
		name, _ := ctx.Value("function_name").(string)
		version, _ := ctx.Value("function_version").(string)
		mem := fmt.Sprint(ctx.Value("memory_limit_in_mb"))
		return map[string]any{
			"event":     map[string]any{"op": ev.Op, "nested": ev.Nested},
			"id":        id,
			"name":      name,
			"version":   version,
			"memory":    mem,
			"remaining": time.Until(dl).Milliseconds(),
			"env":       os.Getenv("GREETING"),
			"uid":       os.Getuid(),
		}, nil
	case "raise":
		return nil, fmt.Errorf("bad input: %d", ev.N)
	case "sleep":
		time.Sleep(time.Duration(ev.S * float64(time.Second)))
		for _, line := range ev.Then {
			fmt.Println(line)
		}
		return "slept", nil
	case "kill9":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(10 * time.Second)
		return "alive", nil
	case "bgerror":
		go func() {
			fmt.Println("bg line")
			panic("bg boom")
		}()
		time.Sleep(time.Second)
		return "slept", nil
	case "spin":
		for {
		}
	case "hog":
		var chunks [][]byte
		for {
			b := make([]byte, 16<<20)
			for i := range b {
				b[i] = 1
			}
			chunks = append(chunks, b)
		}
	case "forkbomb":
		var cmds []*exec.Cmd
		errText := ""
		for i := 0; i < 500; i++ {
			c := exec.Command("sleep", "30")
			if err := c.Start(); err != nil {
				errText = err.Error()
				break
			}
			cmds = append(cmds, c)
		}
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
		return map[string]any{"forked": len(cmds), "error": errText}, nil
	case "write":
		out := map[string]string{}
		for _, p := range []string{"/var/task/x", "/etc/x", "/x", "/tmp/x"} {
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				var errno syscall.Errno
				if errors.As(err, &errno) {
					out[p] = errno.Error()
				} else {
					out[p] = err.Error()
				}
			} else {
				out[p] = "ok"
			}
		}
		return out, nil
	case "net":
		ents, err := os.ReadDir("/sys/class/net")
		if err != nil {
			return nil, err
		}
		var sys []string
		for _, e := range ents {
			sys = append(sys, e.Name())
		}
		b, err := os.ReadFile("/proc/net/dev")
		if err != nil {
			return nil, err
		}
		var dev []string
		for _, l := range strings.Split(string(b), "\n")[2:] {
			if i := strings.IndexByte(l, ':'); i >= 0 {
				dev = append(dev, strings.TrimSpace(l[:i]))
			}
		}
		sort.Strings(sys)
		sort.Strings(dev)
		return map[string][]string{"sys": sys, "proc": dev}, nil
	case "spam":
		line := strings.Repeat("x", 99)
		for i := 0; i < ev.Lines; i++ {
			fmt.Println(line)
		}
		return "spammed", nil
	case "nonjson":
		return map[string]any{"f": func() {}}, nil
	case "exit":
		os.Exit(ev.Code)
	case "counter":
		n := 0
		if b, err := os.ReadFile("/tmp/counter"); err == nil {
			n, _ = strconv.Atoi(string(b))
		}
		n++
		if err := os.WriteFile("/tmp/counter", []byte(strconv.Itoa(n)), 0o644); err != nil {
			return nil, err
		}
		return n, nil
	case "host":
		time.Sleep(time.Duration(ev.S * float64(time.Second)))
		return os.Hostname()
	case "fdwrite":
		n, err := syscall.Write(1, []byte(strings.Repeat("a", 200000)+"\n"))
		if err != nil {
			return nil, err
		}
		_, _ = syscall.Write(2, []byte("err line\n"))
		fmt.Println("print")
		c := exec.Command("sh", "-c", "echo child out; echo child err >&2")
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Run(); err != nil {
			return nil, err
		}
		return n, nil
	case "procs":
		if err := exec.Command("sleep", "100").Start(); err != nil {
			return nil, err
		}
		if err := exec.Command("sh", "-c", "sleep 100 >/dev/null 2>&1 &").Run(); err != nil {
			return nil, err
		}
		return "started", nil
	case "pids":
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return nil, err
		}
		names := []string{}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == 1 || pid == os.Getpid() {
				continue
			}
			b, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
			names = append(names, strings.TrimSpace(string(b)))
		}
		sort.Strings(names)
		return names, nil
	case "deep":
		out := []any{}
		for i := 1; i < ev.N; i++ {
			out = []any{out}
		}
		return out, nil
	case "echo":
		return ev, nil
	case "getenv":
		return os.Getenv(ev.Name), nil
	}
	return nil, errors.New("unknown op " + ev.Op)
}
