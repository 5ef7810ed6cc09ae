// Ferry's Go runner. ferry-build copies this file into the user's `package main`
// bundle (as zz_ferry_runner.go) together with a generated file that binds the
// handler:
//
//	var ferryHandler interface{} = Handle
//
// and compiles both into one static binary. The binary loads nothing at start,
// connects to /run/ferry/ferry.sock and serves invocations one at a time with
// length-prefixed JSON frames (see runtimes/README.md). Standard library only,
// so that a build needs no module download.
//
// Every top-level name here starts with "ferry" or "Ferry" to stay out of the
// way of the user's identifiers in the same package. The file is compiled with the
// bundle's language version (its go.mod's go line), so it sticks to Go 1.17:
// no generics, no any, no min/max builtins.
//
// The directory name starts with "_" so that the Go tool leaves this file out of
// the Ferry module's own package graph.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Keys of the invocation's values in the handler's context. They are plain
// strings so that a handler reads them without importing anything of Ferry's:
//
//	id, _ := ctx.Value("aws_request_id").(string)
const (
	FerryKeyRequestID          = "aws_request_id"
	FerryKeyFunctionName       = "function_name"
	FerryKeyFunctionVersion    = "function_version"
	FerryKeyMemoryLimitInMB    = "memory_limit_in_mb"
	FerryKeyInvokedFunctionArn = "invoked_function_arn"
)

// FerryInvocation describes the running invocation, with Lambda's names.
type FerryInvocation struct {
	AwsRequestID       string
	FunctionName       string
	FunctionVersion    string
	MemoryLimitInMB    int
	InvokedFunctionArn string
	Deadline           time.Time
}

type ferryInvocationKey struct{}

// FerryInvocationFrom returns the invocation ctx belongs to. It exists only in
// binaries built by Ferry; ctx.Value("aws_request_id") works everywhere.
func FerryInvocationFrom(ctx context.Context) (FerryInvocation, bool) {
	inv, ok := ctx.Value(ferryInvocationKey{}).(FerryInvocation)
	return inv, ok
}

// FerryRequestID returns the invocation id of ctx, "" outside an invocation.
func FerryRequestID(ctx context.Context) string {
	inv, _ := FerryInvocationFrom(ctx)
	return inv.AwsRequestID
}

// ferryMaxJSONDepth is the deepest nesting of arrays and objects in an event or
// a result (ferry.MaxJSONDepth).
const ferryMaxJSONDepth = 512

var ferryCgroupPeakFiles = []string{
	"/sys/fs/cgroup/memory.peak",                      // cgroup v2
	"/sys/fs/cgroup/memory/memory.max_usage_in_bytes", // cgroup v1
}

func main() {
	start := time.Now()
	logs, err := ferryNewLogs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry-runner: log markers:", err)
		os.Exit(2)
	}
	if root := os.Getenv("LAMBDA_TASK_ROOT"); root != "" {
		_ = os.Chdir(root) // as on Lambda; a missing folder is no reason to stop
	}

	path := os.Getenv("FERRY_SOCKET")
	if path == "" {
		path = "/run/ferry/ferry.sock"
	}
	conn, err := ferryConnect(path, 5*time.Second)
	if err != nil {
		logs.diagf("cannot connect to %s: %v", path, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(conn)
	r := bufio.NewReader(conn)
	ferryConnW, ferryConnR = w, r

	// A spare (FERRY_SPARE=1) starts before it belongs to any function: it
	// says "waiting" and takes the function's environment from the init frame
	// (runtimes/README.md, "Spares"). The handler itself is compiled in.
	if os.Getenv("FERRY_SPARE") == "1" && os.Getenv("FERRY_HANDLER") == "" {
		_ = ferryWriteFrame(w, map[string]interface{}{"type": "waiting", "init_ms": ferryMillis(time.Since(start))})
		for {
			var msg ferryInitMsg
			if err := ferryReadFrame(r, &msg); err != nil {
				os.Exit(0) // the host closed the connection before assigning it
			}
			if msg.Type != "init" {
				logs.diagf("ignoring frame of type %q while waiting", msg.Type)
				continue
			}
			start = time.Now()
			logs.begin() // the load's output, the host's capture since the init frame
			for k, v := range msg.Env {
				_ = os.Setenv(k, v)
			}
			if msg.Handler != "" {
				_ = os.Setenv("FERRY_HANDLER", msg.Handler)
			}
			break
		}
	}

	h, initErr := ferryNewHandler(ferryHandler)
	logs.end() // what the packages' initialisation printed is the load's output
	if initErr != nil {
		_ = ferryWriteFrame(w, map[string]interface{}{"type": "init_error", "error": initErr})
		os.Exit(1)
	}
	_ = ferryWriteFrame(w, map[string]interface{}{"type": "ready", "init_ms": ferryMillis(time.Since(start))})

	info := ferryStaticInfo()
	for {
		var msg ferryInvokeMsg
		body, err := ferryReadBody(r)
		// The frame is one level around the event. A deeper event is refused
		// before decoding (encoding/json gives up at 10000 levels, which
		// would end the runner) and the handler is not called.
		if err == nil && ferryTooDeep(body, ferryMaxJSONDepth+1) {
			msg.Type, msg.tooDeep = "invoke", true
		} else if err == nil {
			err = json.Unmarshal(body, &msg)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				logs.diagf("reading a frame: %v", err)
			}
			os.Exit(0) // the host is gone: nothing more to do
		}
		if msg.Type != "invoke" {
			logs.diagf("ignoring frame of type %q", msg.Type)
			continue
		}
		if err := ferryWriteFrame(w, h.invoke(&msg, info, logs)); err != nil {
			logs.diagf("writing a result: %v", err)
			os.Exit(2)
		}
	}
}

// ---- handler ----------------------------------------------------------------

type ferryError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Stack   string `json:"stack"`
}

type ferryInvokeMsg struct {
	Type       string          `json:"type"`
	ID         string          `json:"id"`
	Event      json.RawMessage `json:"event"`
	DeadlineMS int64           `json:"deadline_ms"`
	// Operations recorded by earlier runs (durable functions).
	Operations []ferryOperation `json:"operations"`

	tooDeep bool // the event nests deeper than ferryMaxJSONDepth; not decoded
}

type ferryInitMsg struct {
	Type    string            `json:"type"`
	Handler string            `json:"handler"`
	Env     map[string]string `json:"env"`
}

type ferryResultMsg struct {
	Type       string          `json:"type"`
	OK         bool            `json:"ok"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      *ferryError     `json:"error,omitempty"`
	DurationMS float64         `json:"duration_ms"`
	MemoryPeak int64           `json:"memory_peak"`
	CPUMS      float64         `json:"cpu_ms"`
	Suspended  string          `json:"suspended,omitempty"`
}

var (
	ferryContextType = reflect.TypeOf((*context.Context)(nil)).Elem()
	ferryErrorType   = reflect.TypeOf((*error)(nil)).Elem()
)

// ferryFunc is the handler with its shape worked out once, by reflection.
type ferryFunc struct {
	fn        reflect.Value
	takesCtx  bool
	event     reflect.Type // nil when the handler takes no event
	returnsV  bool         // (R, error) rather than just error
	returnsEr bool
}

// ferryNewHandler accepts the shapes of aws-lambda-go:
// func([ctx context.Context,] [event T]) [R,] [error], where T and R are JSON types.
func ferryNewHandler(h interface{}) (*ferryFunc, *ferryError) {
	bad := func(msg string) (*ferryFunc, *ferryError) {
		return nil, &ferryError{Type: "Runtime.InvalidHandler", Message: msg +
			"; want func(context.Context, T) (R, error) or another shape of the README"}
	}
	if h == nil {
		return bad("the handler is nil")
	}
	v := reflect.ValueOf(h)
	t := v.Type()
	if t.Kind() != reflect.Func {
		return bad(fmt.Sprintf("the handler is a %s, not a function", t))
	}
	if t.IsVariadic() {
		return bad(fmt.Sprintf("the handler %s is variadic", t))
	}
	f := &ferryFunc{fn: v}
	switch t.NumIn() {
	case 0:
	case 1:
		if t.In(0).Implements(ferryContextType) {
			f.takesCtx = true
		} else {
			f.event = t.In(0)
		}
	case 2:
		if !t.In(0).Implements(ferryContextType) {
			return bad(fmt.Sprintf("the first parameter of %s is not a context.Context", t))
		}
		f.takesCtx, f.event = true, t.In(1)
	default:
		return bad(fmt.Sprintf("the handler %s takes more than two parameters", t))
	}
	switch t.NumOut() {
	case 0:
	case 1:
		if t.Out(0).Implements(ferryErrorType) {
			f.returnsEr = true
		} else {
			f.returnsV = true
		}
	case 2:
		if !t.Out(1).Implements(ferryErrorType) {
			return bad(fmt.Sprintf("the second result of %s is not an error", t))
		}
		f.returnsV, f.returnsEr = true, true
	default:
		return bad(fmt.Sprintf("the handler %s returns more than two values", t))
	}
	return f, nil
}

type ferryInfo struct {
	name, version, arn string
	memoryMB           int
}

func ferryStaticInfo() ferryInfo {
	mb, _ := strconv.Atoi(os.Getenv("FERRY_MEMORY_MB"))
	return ferryInfo{
		name:     os.Getenv("FERRY_FUNCTION_NAME"),
		version:  os.Getenv("FERRY_FUNCTION_VERSION"),
		arn:      os.Getenv("FERRY_FUNCTION_ARN"),
		memoryMB: mb,
	}
}

func (f *ferryFunc) invoke(msg *ferryInvokeMsg, info ferryInfo, logs *ferryLogs) *ferryResultMsg {
	ctx := context.Background()
	var deadline time.Time
	if msg.DeadlineMS > 0 {
		deadline = time.UnixMilli(msg.DeadlineMS)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	ctx = context.WithValue(ctx, ferryInvocationKey{}, FerryInvocation{
		AwsRequestID:       msg.ID,
		FunctionName:       info.name,
		FunctionVersion:    info.version,
		MemoryLimitInMB:    info.memoryMB,
		InvokedFunctionArn: info.arn,
		Deadline:           deadline,
	})
	// Plain string keys on purpose: handlers need no import to read them.
	for k, v := range map[string]interface{}{
		FerryKeyRequestID:          msg.ID,
		FerryKeyFunctionName:       info.name,
		FerryKeyFunctionVersion:    info.version,
		FerryKeyMemoryLimitInMB:    info.memoryMB,
		FerryKeyInvokedFunctionArn: info.arn,
	} {
		ctx = context.WithValue(ctx, k, v)
	}

	durable := ferryNewDurable(msg.Operations)
	ctx = context.WithValue(ctx, ferryDurableKey{}, durable)

	procs := ferryFunctionProcesses()
	cpu0 := ferryCPUTime()
	logs.begin()
	start := time.Now()
	// The handler runs on its own goroutine so that a durable wait can end
	// it (runtime.Goexit) and leave the runner serving.
	var result json.RawMessage
	var ferr *ferryError
	done := make(chan struct{})
	go func() {
		defer close(done)
		result, ferr = f.call(ctx, msg.Event, msg.tooDeep)
	}()
	<-done
	duration := time.Since(start)
	durable.mu.Lock()
	suspended := durable.suspended
	durable.mu.Unlock()
	if suspended != "" {
		result, ferr = nil, nil
	}
	ferryEndProcesses(procs)
	logs.end()
	return &ferryResultMsg{
		Type:       "result",
		OK:         ferr == nil,
		Result:     result,
		Error:      ferr,
		DurationMS: ferryMillis(duration),
		MemoryPeak: ferryMemoryPeak(),
		CPUMS:      ferryMillis(ferryCPUTime() - cpu0),
		Suspended:  suspended,
	}
}

func (f *ferryFunc) call(ctx context.Context, event json.RawMessage, tooDeep bool) (result json.RawMessage, ferr *ferryError) {
	defer func() {
		if v := recover(); v != nil {
			msg := fmt.Sprint(v)
			if err, ok := v.(error); ok {
				msg = err.Error()
			}
			result, ferr = nil, &ferryError{Type: "panic", Message: msg, Stack: ferryPanicStack(string(debug.Stack()))}
		}
	}()
	var args []reflect.Value
	if f.takesCtx {
		args = append(args, reflect.ValueOf(ctx))
	}
	if tooDeep {
		return nil, &ferryError{Type: "Runtime.UnmarshalError",
			Message: fmt.Sprintf("the event is nested deeper than the limit of %d levels", ferryMaxJSONDepth)}
	}
	if f.event != nil {
		ev := reflect.New(f.event)
		if len(event) > 0 {
			if err := json.Unmarshal(event, ev.Interface()); err != nil {
				return nil, &ferryError{Type: "Runtime.UnmarshalError",
					Message: fmt.Sprintf("cannot decode the event into %s: %v", f.event, err)}
			}
		}
		args = append(args, ev.Elem())
	}
	out := f.fn.Call(args)
	if f.returnsEr {
		if errV := out[len(out)-1]; !errV.IsNil() {
			err := errV.Interface().(error)
			return nil, &ferryError{Type: fmt.Sprintf("%T", err), Message: err.Error()}
		}
	}
	if !f.returnsV {
		return json.RawMessage("null"), nil
	}
	b, err := json.Marshal(out[0].Interface())
	if err == nil && ferryTooDeep(b, ferryMaxJSONDepth) {
		err = fmt.Errorf("it is nested deeper than the limit of %d levels", ferryMaxJSONDepth)
	}
	if err != nil {
		return nil, &ferryError{Type: "Runtime.MarshalError", Message: "Unable to marshal the result: " + err.Error()}
	}
	return b, nil
}

// ferryTooDeep reports whether the JSON text nests arrays and objects deeper
// than limit.
func ferryTooDeep(text []byte, limit int) bool {
	depth, inString := 0, false
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case inString:
			if c == '\\' {
				i++ // the escaped character
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > limit {
				return true
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return false
}

// ferryPanicStack keeps the goroutine header and the frames between the panic
// and the runner's reflective call of the handler.
func ferryPanicStack(stack string) string {
	lines := strings.Split(stack, "\n")
	from, to := -1, len(lines)
	for i, line := range lines {
		if from < 0 && strings.HasPrefix(line, "panic(") {
			from = i + 2 // the panic call and its file:line
		} else if from >= 0 && strings.HasPrefix(line, "reflect.Value.call(") {
			to = i
			break
		}
	}
	if from < 0 || from > to {
		return stack
	}
	return strings.Join(append(lines[:1:1], lines[from:to]...), "\n")
}

// ---- processes --------------------------------------------------------------

// ferryFunctionProcesses returns the function's processes: the runner's
// descendants and, in a container whose init is docker-init, the orphans it
// adopted. Never anything else, so a runner started outside a container
// touches no stranger's process.
func ferryFunctionProcesses() map[int]bool {
	me := os.Getpid()
	roots := map[int]bool{me: true}
	if comm, err := os.ReadFile("/proc/1/comm"); err == nil && os.Getppid() == 1 && strings.TrimSpace(string(comm)) == "docker-init" {
		roots[1] = true
	}
	names, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, n := range names {
		pid, err := strconv.Atoi(n.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + n.Name() + "/stat")
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	found := map[int]bool{}
	var todo []int
	for pid := range roots {
		todo = append(todo, pid)
	}
	for len(todo) > 0 {
		parent := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		for _, pid := range children[parent] {
			if !found[pid] && !roots[pid] {
				found[pid] = true
				todo = append(todo, pid)
			}
		}
	}
	return found
}

// ferryEndProcesses kills the function's processes started since before was
// taken, and reaps the runner's own children among them.
func ferryEndProcesses(before map[int]bool) {
	for pid := range ferryFunctionProcesses() {
		if before[pid] {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			_, _ = syscall.Wait4(pid, nil, 0, nil) // ECHILD when the init is its parent
		}
	}
}

// ---- logs -------------------------------------------------------------------

// ferryLogs writes the host's markers around each invocation's output. The
// image's entry point points fd 1 and 2 at the FIFO /run/ferry/logs, whose
// reading end the host holds: what the function writes (fmt, log, a panic's
// message and stack, child processes) leaves the container as it is written
// and outlives the process (runtimes/README.md, "Logs"). fd 3 is the
// container's own stderr, for the runner's diagnostics.
type ferryLogs struct {
	fd     int // a copy of fd 1 that the handler cannot replace
	beginM []byte
	endM   []byte
	diag   *os.File
}

func ferryNewLogs() (*ferryLogs, error) {
	fd, err := syscall.Dup(1)
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	diag, err := syscall.Dup(3)
	if err != nil {
		diag, err = syscall.Dup(2) // started without the entry point
	}
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(diag)
	token := "\x00ferry-log-" + os.Getenv("FERRY_LOG_MARK") + "-"
	_ = os.Unsetenv("FERRY_LOG_MARK")
	return &ferryLogs{
		fd:     fd,
		beginM: []byte(token + "B\x00"),
		endM:   []byte(token + "E\x00"),
		diag:   os.NewFile(uintptr(diag), "ferry-diag"),
	}, nil
}

func (l *ferryLogs) mark(m []byte) {
	if _, err := syscall.Write(l.fd, m); err != nil {
		l.diagf("writing a log marker: %v", err)
	}
}

func (l *ferryLogs) begin() { l.mark(l.beginM) }

// end ends the invocation's (or the load's) output: what was written before
// reaches the host before this marker.
func (l *ferryLogs) end() { l.mark(l.endM) }

func (l *ferryLogs) diagf(format string, args ...interface{}) {
	fmt.Fprintf(l.diag, "ferry-runner: "+format+"\n", args...)
}

// ---- protocol -----------------------------------------------------------------

func ferryConnect(path string, wait time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(wait)
	for {
		conn, err := net.Dial("unix", path)
		if err == nil || time.Now().After(deadline) {
			return conn, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ferryWriteFrame(w *bufio.Writer, v interface{}) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var head [4]byte
	binary.BigEndian.PutUint32(head[:], uint32(len(body)))
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

func ferryReadFrame(r *bufio.Reader, v interface{}) error {
	body, err := ferryReadBody(r)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// ferryReadBody reads one frame's JSON text.
func ferryReadBody(r *bufio.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(head[:]))
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// ---- metrics ------------------------------------------------------------------

func ferryCPUTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

func ferryMemoryPeak() int64 {
	for _, path := range ferryCgroupPeakFiles {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return n
		}
	}
	return 0
}

func ferryMillis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
