package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-faas/ferry"
	apiclient "github.com/ferry-faas/ferry/client"
)

// Exit codes of the client commands; scripts may rely on them.
const (
	exitOK             = 0
	exitFunctionFailed = 1 // the function failed, timed out or was cancelled
	exitUsage          = 2 // bad flags or arguments
	exitAPI            = 3 // the API refused the request (4xx)
	exitServer         = 4 // server error (5xx) or no connection
)

// exitCodesHelp documents the exit codes; main shows it in `ferry --help`.
const exitCodesHelp = `Exit codes of the client commands:
  0  success
  1  the function failed, timed out or was cancelled (invoke)
  2  usage error (bad flags or arguments)
  3  API error: the request was refused (4xx)
  4  server error (5xx) or the server could not be reached`

const defaultURL = "http://127.0.0.1:8080"

// cliError carries the exit code of a failed client command.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) ExitCode() int { return e.code }

func usageError(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// clientConfig is shared by the client commands: where the API is and how to
// print. Flags fill it, with FERRY_URL and FERRY_API_KEY as defaults.
type clientConfig struct {
	url    string
	apiKey string
	output string
	getenv func(string) string
	http   *http.Client
}

// clientCommands are the client sub-commands added to the root command.
func clientCommands() []*cobra.Command {
	cfg := &clientConfig{getenv: os.Getenv, http: &http.Client{}}
	cmds := []*cobra.Command{
		deployCommand(cfg), invokeCommand(cfg), getCommand(cfg), lsCommand(cfg), versionsCommand(cfg),
		rmCommand(cfg), invocationsCommand(cfg), logsCommand(cfg), cancelCommand(cfg), retryCommand(cfg),
		keysCommand(cfg), chainsCommand(cfg), schedulesCommand(cfg), aliasCommand(cfg), rollbackCommand(cfg), secretCommand(cfg),
	}
	for _, c := range cmds {
		c.PersistentFlags().StringVar(&cfg.url, "url", "", "API base URL (env FERRY_URL, default "+defaultURL+")")
		c.PersistentFlags().StringVar(&cfg.apiKey, "api-key", "", "API key (env FERRY_API_KEY)")
		c.PersistentFlags().StringVarP(&cfg.output, "output", "o", "table", "output format: table or json")
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError("%v", err) })
		c.SilenceUsage = true
	}
	return cmds
}

// exactArgs is cobra.ExactArgs with the usage exit code.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError("%s needs %s (see ferry %s --help)", cmd.CommandPath(), names, cmd.Name())
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// client is an API client built from the flags at run time, with where and
// how to print.
type client struct {
	api    *apiclient.Client
	json   bool
	stdout io.Writer
	stderr io.Writer
}

func (cfg *clientConfig) client(cmd *cobra.Command) (*client, error) {
	base := cfg.url
	if base == "" {
		base = cfg.getenv("FERRY_URL")
	}
	if base == "" {
		base = defaultURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError("--url %q is not an http(s) URL", base)
	}
	key := cfg.apiKey
	if key == "" {
		key = cfg.getenv("FERRY_API_KEY")
	}
	switch cfg.output {
	case "table", "json":
	default:
		return nil, usageError("--output must be table or json, not %q", cfg.output)
	}
	api := &apiclient.Client{URL: strings.TrimRight(base, "/"), APIKey: key, HTTP: cfg.http}
	return &client{api: api, json: cfg.output == "json", stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr()}, nil
}

// request is one API call.
type request struct {
	method  string
	path    string
	body    io.Reader
	ctype   string
	headers map[string]string
	// wait labels a call that may take long (a sync invoke): a progress line
	// shows on a terminal after a second.
	wait string
	// stream, when set, receives a 2xx answer's body as it arrives (followed
	// logs); do then returns no body.
	stream io.Writer
}

// do sends r and returns the status and body of a 2xx answer; other answers
// and connection failures become cliErrors with the matching exit code.
func (c *client) do(ctx context.Context, r request) (int, http.Header, []byte, error) {
	path, query, _ := strings.Cut(r.path, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return 0, nil, nil, usageError("%v", err)
	}
	h := http.Header{}
	for k, v := range r.headers {
		h.Set(k, v)
	}
	var res *apiclient.Response
	err = c.waiting(r.wait, func() error {
		res, err = c.api.Do(ctx, apiclient.Request{Method: r.method, Path: path, Query: q, Body: r.body, ContentType: r.ctype, Header: h, Stream: r.stream})
		return err
	})
	if err != nil {
		return 0, nil, nil, err
	}
	return res.StatusCode, res.Header, res.Body, nil
}

// waiting runs call, showing a progress line labelled label (if not "") on a
// terminal after a second, and turns the client's errors into cliErrors.
func (c *client) waiting(label string, call func() error) error {
	if label != "" {
		stop := startProgress(c.stderr, label)
		defer stop()
	}
	return c.exitError(call())
}

// exitError gives an error of the API client the exit code of its kind:
// exitServer for no answer or a server error, exitAPI for a refusal.
func (c *client) exitError(err error) error {
	var ae *apiclient.Error
	if !errors.As(err, &ae) {
		return err
	}
	code := exitAPI
	if ae.Code == ferry.EUNAVAILABLE || ae.Code == ferry.EINTERNAL || ae.StatusCode >= 500 {
		code = exitServer
	}
	msg := ae.Error()
	if ae.StatusCode == http.StatusUnauthorized && c.api.APIKey == "" {
		msg = fmt.Sprintf("%s (set FERRY_API_KEY or --api-key) (HTTP %d)", ae.Message, ae.StatusCode)
	}
	return &cliError{code: code, msg: msg}
}

// getJSON GETs path and decodes the answer into out.
func (c *client) getJSON(ctx context.Context, path string, out any) ([]byte, error) {
	_, _, body, err := c.do(ctx, request{method: "GET", path: path})
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return nil, &cliError{code: exitServer, msg: fmt.Sprintf("unexpected answer from %s: %v", path, err)}
		}
	}
	return body, nil
}

func jsonBody(v any) (io.Reader, string) {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b), "application/json"
}

// printJSON pretty-prints an API answer.
func (c *client) printJSON(body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		buf.Reset()
		buf.Write(body)
	}
	buf.WriteByte('\n')
	_, err := c.stdout.Write(buf.Bytes())
	return err
}

// printValue prints v as indented JSON.
func (c *client) printValue(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}

func (c *client) table(header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

// startProgress shows "label… 3.1s" on a terminal once a wait passes a
// second; stop erases it. On pipes and files it does nothing.
func startProgress(w io.Writer, label string) (stop func()) {
	f, ok := w.(*os.File)
	if !ok {
		return func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		shown := false
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		spin := `|/-\`
		for i := 0; ; i++ {
			select {
			case <-done:
				if shown {
					fmt.Fprint(f, "\r\033[K")
				}
				return
			case <-tick.C:
				if d := time.Since(start); d >= time.Second {
					shown = true
					fmt.Fprintf(f, "\r\033[K%c %s %.1fs", spin[i%len(spin)], label, d.Seconds())
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// humanBytes formats a size for tables.
func humanBytes(n float64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}

// shortTime formats a time for tables, in local time; "-" for none.
func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func shortTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return shortTime(*t)
}

// shortTimeOf formats an API timestamp (RFC 3339) for tables.
func shortTimeOf(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "-"
	}
	return shortTime(t)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// jsonUnmarshal decodes an API answer; a mismatch is the server's fault.
func jsonUnmarshal(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &cliError{code: exitServer, msg: fmt.Sprintf("unexpected answer from the API: %v", err)}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
