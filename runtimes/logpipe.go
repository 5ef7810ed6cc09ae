package runtimes

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Logs leave the container through a FIFO that the executor creates in the
// container's run folder and holds open for reading (runtimes/README.md,
// "Logs"): the image's entry point points fd 1 and 2 at it, so what a function
// writes reaches the worker as it is written, in one order for stdout and
// stderr, and stays readable after the process died, whatever killed it. The
// runner writes markers into the same FIFO where an invocation's output begins
// and ends; the executor writes a sync marker itself when it must know that it
// has read everything written so far (after a timeout or a crash).

const (
	logFIFOName = "logs" // in the run folder, /run/ferry/logs inside
	// tailKeep is how much of the end of an invocation's output is kept apart
	// from the capped logs: a crash's last words come from it.
	tailKeep = 8 << 10
	// outsideKeep bounds what is kept of output outside any invocation (a
	// goroutine that panics between invocations): its end explains a crash.
	outsideKeep = 8 << 10
	// pipeSize is asked of the kernel for the FIFO, so that bursts of output
	// do not wait for the worker to read (the default is 64 KiB).
	pipeSize = 1 << 20
)

// logMarks are the markers of one container: "\0ferry-log-<token>-B\0" where
// the runner begins an invocation (or a spare's load), E where it ends one,
// S where the executor synced. The token (FERRY_LOG_MARK) is random per
// container.
type logMarks struct {
	token  string
	prefix []byte // everything up to the kind byte
	size   int
}

func newLogMarks() logMarks {
	token := randomHex(12)
	prefix := []byte("\x00ferry-log-" + token + "-")
	return logMarks{token: token, prefix: prefix, size: len(prefix) + 2}
}

func (m logMarks) mark(kind byte) []byte {
	return append(append(bytes.Clone(m.prefix), kind), 0)
}

// logPipe reads a container's log FIFO for the container's whole life.
type logPipe struct {
	f     *os.File
	marks logMarks
	limit int

	mu       sync.Mutex
	cur      *capture // nil: output belongs to no invocation
	inside   bool     // between cur's begin and end
	outside  []byte   // the end of output outside invocations
	syncWait []chan struct{}
}

// openLogPipe creates the FIFO in dir, opens it and starts reading.
func openLogPipe(dir string, marks logMarks, limit int) (*logPipe, error) {
	path := dir + "/" + logFIFOName
	if err := mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("create log FIFO: %w", err)
	}
	// uid 1000 writes, nobody else reads.
	if err := os.Chmod(path, 0o622); err != nil {
		return nil, fmt.Errorf("chmod log FIFO: %w", err)
	}
	// Read-write: the open does not wait for a writer, and reads never see
	// an end of file when the container's writers go away.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open log FIFO: %w", err)
	}
	setPipeSize(f, pipeSize)
	p := &logPipe{f: f, marks: marks, limit: limit}
	go p.read()
	return p, nil
}

func (p *logPipe) close() { _ = p.f.Close() }

// start begins a capture: output after the runner's begin marker (or, with
// now set, from now on) until its end marker. sink, when not nil, receives
// the captured text as it arrives (see Spec.OnLogs).
func (p *logPipe) start(now bool, sink func(string)) *capture {
	c := &capture{limit: p.limit, done: make(chan struct{}), sink: sink}
	p.mu.Lock()
	p.cur, p.inside = c, now
	p.mu.Unlock()
	return c
}

// stop detaches c: later output belongs to no invocation.
func (p *logPipe) stop(c *capture) {
	p.mu.Lock()
	if p.cur == c {
		p.cur, p.inside = nil, false
	}
	p.mu.Unlock()
}

// sync returns once everything written to the FIFO before it was called has
// been read, or after d. It is for ends without an end marker: a timeout, a
// crash (after the process exited, so that its last words are in).
func (p *logPipe) sync(d time.Duration) bool {
	ch := make(chan struct{})
	p.mu.Lock()
	p.syncWait = append(p.syncWait, ch)
	p.mu.Unlock()
	_ = p.f.SetWriteDeadline(time.Now().Add(d))
	if _, err := p.f.Write(p.marks.mark('S')); err != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// outsideText returns the end of the output written outside invocations.
func (p *logPipe) outsideText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cleanLog(p.outside)
}

func (p *logPipe) read() {
	buf := make([]byte, 64<<10)
	var data []byte
	for {
		n, err := p.f.Read(buf)
		if n > 0 {
			data = append(data, buf[:n]...)
			rest := p.scan(data)
			data = append(data[:0], rest...)
		}
		if err != nil {
			return // closed with the container
		}
	}
}

// scan hands data to the capture or the outside buffer, acting on markers,
// and returns the tail that may be the start of a marker split across reads.
func (p *logPipe) scan(data []byte) []byte {
	m := p.marks
	for {
		i := bytes.Index(data, m.prefix)
		if i < 0 || len(data) < i+m.size {
			break
		}
		kind := data[i+m.size-2]
		if data[i+m.size-1] != 0 || (kind != 'B' && kind != 'E' && kind != 'S') {
			p.emit(data[:i+1])
			data = data[i+1:]
			continue
		}
		p.emit(data[:i])
		p.marker(kind)
		data = data[i+m.size:]
	}
	hold := 0
	for k := min(m.size-1, len(data)); k > 0; k-- {
		tail := data[len(data)-k:]
		if tail[0] != 0 {
			continue
		}
		if k <= len(m.prefix) && bytes.HasPrefix(m.prefix, tail) || k > len(m.prefix) && bytes.HasPrefix(tail, m.prefix) {
			hold = k
			break
		}
	}
	p.emit(data[:len(data)-hold])
	return data[len(data)-hold:]
}

func (p *logPipe) emit(b []byte) {
	if len(b) == 0 {
		return
	}
	p.mu.Lock()
	if p.cur == nil || !p.inside {
		p.outside = append(p.outside, b...)
		if len(p.outside) > outsideKeep {
			p.outside = append(p.outside[:0], p.outside[len(p.outside)-outsideKeep:]...)
		}
		p.mu.Unlock()
		return
	}
	c := p.cur
	text := c.add(b)
	p.mu.Unlock()
	if text != "" && c.sink != nil {
		c.sink(text) // in order: only this goroutine calls it
	}
}

func (p *logPipe) marker(kind byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch kind {
	case 'B':
		if p.cur != nil && !p.cur.ended {
			p.inside = true
		}
	case 'E':
		if p.cur != nil && p.inside {
			p.cur.end()
			p.cur, p.inside = nil, false
		}
	case 'S':
		for _, ch := range p.syncWait {
			close(ch)
		}
		p.syncWait = nil
	}
}

// capture is the output of one invocation (or load): the first limit bytes,
// valid UTF-8 without NUL bytes (what PostgreSQL's text keeps), and the last
// tailKeep bytes apart. Guarded by its logPipe's mutex.
type capture struct {
	limit   int
	buf     []byte
	total   int    // bytes of text, kept or not
	pending []byte // an incomplete UTF-8 sequence at the end of the last write
	tail    []byte // the end of the text once it passed limit
	sink    func(string)
	ended   bool
	done    chan struct{} // closed at the end marker
}

// add appends b and returns the part of it that was kept, as text.
func (c *capture) add(b []byte) string {
	if len(c.pending) > 0 {
		b = append(c.pending, b...)
		c.pending = nil
	}
	// Hold back a sequence that the next write may complete.
	if cut := incompleteSuffix(b); cut > 0 {
		c.pending = bytes.Clone(b[len(b)-cut:])
		b = b[:len(b)-cut]
	}
	text := cleanLog(b)
	c.total += len(text)
	kept := ""
	if room := c.limit - len(c.buf); room > 0 {
		kept = text
		if len(kept) > room {
			kept = kept[:room]
			for len(kept) > 0 && !utf8.RuneStart(text[len(kept)]) {
				kept = kept[:len(kept)-1]
			}
		}
		c.buf = append(c.buf, kept...)
	}
	if c.total > c.limit {
		c.tail = append(c.tail, text[len(kept):]...)
		if len(c.tail) > tailKeep {
			c.tail = append(c.tail[:0], c.tail[len(c.tail)-tailKeep:]...)
		}
	}
	return kept
}

func (c *capture) end() {
	if c.ended {
		return
	}
	if len(c.pending) > 0 {
		c.add([]byte{0xff}) // flushes the incomplete sequence as U+FFFD
	}
	c.ended = true
	close(c.done)
}

// result returns the logs as stored, with the truncation marker when the
// output passed the limit, and the end of the output (for a crash's last
// words).
func (p *logPipe) result(c *capture) (logs, tail string, truncated bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	logs = string(c.buf)
	truncated = c.total > c.limit
	tail = logs
	if truncated {
		from := max(0, len(c.buf)-tailKeep+len(c.tail))
		for from < len(c.buf) && !utf8.RuneStart(c.buf[from]) {
			from++
		}
		tail = string(c.buf[from:]) + strings.ToValidUTF8(string(c.tail), "")
		if logs != "" && logs[len(logs)-1] != '\n' {
			logs += "\n"
		}
		logs += fmt.Sprintf("[ferry: logs truncated after %d bytes]\n", c.limit)
	}
	return logs, tail, truncated
}

// incompleteSuffix returns the length of a UTF-8 sequence at the end of b that
// has begun but not ended (0 to 3 bytes).
func incompleteSuffix(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		if utf8.RuneStart(b[len(b)-k]) {
			if !utf8.FullRune(b[len(b)-k:]) {
				return k
			}
			return 0
		}
	}
	return 0
}

// cleanLog is b as PostgreSQL's text keeps it: invalid UTF-8 replaced by
// U+FFFD, NUL bytes dropped.
func cleanLog(b []byte) string {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	return strings.ReplaceAll(strings.ToValidUTF8(string(b), "\uFFFD"), "\x00", "")
}
