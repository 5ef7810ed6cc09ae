package runtimes

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The log FIFO without a container: a writer plays the runner.
func TestLogPipe(t *testing.T) {
	dir := t.TempDir()
	marks := newLogMarks()
	p, err := openLogPipe(dir, marks, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	w, err := os.OpenFile(dir+"/"+logFIFOName, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	write := func(parts ...string) {
		t.Helper()
		for _, s := range parts {
			if _, err := w.WriteString(s); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond) // separate reads
		}
	}
	begin, end := string(marks.mark('B')), string(marks.mark('E'))
	wait := func(c *capture) {
		t.Helper()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Fatal("no end marker")
		}
	}

	t.Run("markers split across writes, UTF-8 split, NUL dropped, sink in order", func(t *testing.T) {
		var mu sync.Mutex
		var seen []string
		c := p.start(false, func(s string) { mu.Lock(); seen = append(seen, s); mu.Unlock() })
		write("before\n", begin[:5], begin[5:]+"h\xc3", "\xa9 one\n\x00two\n"+end[:len(end)-1], end[len(end)-1:]+"after\n")
		wait(c)
		logs, _, truncated := p.result(c)
		eq(t, "logs", logs, "hé one\ntwo\n")
		eq(t, "truncated", truncated, false)
		mu.Lock()
		eq(t, "sink", strings.Join(seen, ""), logs)
		mu.Unlock()
		p.stop(c)
		p.sync(time.Second)
		eq(t, "outside", p.outsideText(), "before\nafter\n")
	})

	t.Run("cap with marker, last words from the end", func(t *testing.T) {
		c := p.start(false, nil)
		write(begin, strings.Repeat("x", 99)+"é"+strings.Repeat("y", 200)+"\npanic: boom\n\ngoroutine 1 [running]:\nmain.f()\n")
		if !p.sync(time.Second) {
			t.Fatal("sync timed out")
		}
		logs, tail, truncated := p.result(c)
		eq(t, "logs", logs, strings.Repeat("x", 99)+"\n[ferry: logs truncated after 100 bytes]\n")
		eq(t, "truncated", truncated, true)
		w := findLastWords(tail)
		eq(t, "last words", w.line, "panic: boom")
		eq(t, "stack", w.stack, "goroutine 1 [running]:\nmain.f()")
		p.stop(c)
	})

	t.Run("output before the begin marker is not the invocation's", func(t *testing.T) {
		c := p.start(false, nil)
		write("stale\n", begin+"mine\n"+end)
		wait(c)
		logs, _, _ := p.result(c)
		eq(t, "logs", logs, "mine\n")
	})
}

func TestFindLastWords(t *testing.T) {
	for _, tc := range []struct{ tail, line, stack string }{
		{"a\nb\n", "", ""},
		{"line\nFatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n  File \"/var/task/app.py\", line 3 in handler\n",
			"Fatal Python error: Segmentation fault", "Current thread 0x1 (most recent call first):\n  File \"/var/task/app.py\", line 3 in handler"},
		{"Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: bad\n", "ValueError: bad",
			"Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: bad"},
		{"<--- Last few GCs --->\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n 1: 0xb7b3e0 node::Abort()\n",
			"FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory", " 1: 0xb7b3e0 node::Abort()"},
	} {
		w := findLastWords(tc.tail)
		eq(t, "line of "+tc.tail, w.line, tc.line)
		eq(t, "stack of "+tc.tail, w.stack, tc.stack)
	}
}
