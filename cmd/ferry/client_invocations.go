package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// invocationRecord is the part of an invocation the CLI shows.
type invocationRecord struct {
	ID       string          `json:"id"`
	Function string          `json:"function"`
	Version  int             `json:"version"`
	Status   string          `json:"status"`
	Result   json.RawMessage `json:"result"`
	Error    *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Stack   string `json:"stack"`
	} `json:"error"`
	Metrics *struct {
		DurationMS float64 `json:"duration_ms"`
		InitMS     float64 `json:"init_ms"`
		TotalMS    float64 `json:"total_ms"`
		Cold       bool    `json:"cold"`
	} `json:"metrics"`
	RetryOf   string `json:"retry_of"`
	CreatedAt string `json:"created_at"`
}

func final(status string) bool {
	switch status {
	case "completed", "failed", "timeout", "cancelled":
		return true
	}
	return false
}

// readData reads --data: inline JSON, @file, or @- for stdin.
func readData(data string, stdin io.Reader) ([]byte, error) {
	if !strings.HasPrefix(data, "@") {
		return []byte(data), nil
	}
	name := data[1:]
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, usageError("--data %s: %v", data, err)
	}
	return b, nil
}

// invokeOptions are the flags `ferry invoke` and `ferry chain invoke` share.
type invokeOptions struct {
	data, idempotencyKey string
	alias                string // functions only
	async, follow        bool
	version              int
}

// postInvoke sends the --data input to an invoke endpoint and returns the
// server's status and body.
func (c *client) postInvoke(cmd *cobra.Command, path, wait string, opts invokeOptions) (int, []byte, error) {
	input, err := readData(opts.data, cmd.InOrStdin())
	if err != nil {
		return 0, nil, err
	}
	if len(strings.TrimSpace(string(input))) > 0 && !json.Valid(input) {
		return 0, nil, usageError("--data is not valid JSON")
	}
	q := url.Values{}
	if opts.version != 0 { // the API refuses a negative one, naming the flag's field
		q.Set("version", strconv.Itoa(opts.version))
	}
	if opts.alias != "" {
		q.Set("alias", opts.alias)
	}
	if opts.async || opts.follow {
		q.Set("async", "true")
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	r := request{method: "POST", path: path, body: strings.NewReader(string(input)), ctype: "application/json",
		headers: map[string]string{}, wait: wait}
	if opts.idempotencyKey != "" {
		r.headers["Idempotency-Key"] = opts.idempotencyKey
	}
	status, _, body, err := c.do(cmd.Context(), r)
	return status, body, err
}

func invokeCommand(cfg *clientConfig) *cobra.Command {
	var opts invokeOptions
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Invoke a function and print its result (or, with --async, the invocation id)",
		Long: `Invoke a function. The event is --data (JSON, @file or @- for stdin).
Without --async, waits for the end and prints the result on stdout and a status
line on stderr; the exit code is 1 when the function failed, timed out or was
cancelled. With --follow, the function's logs go to stderr as they are written.

` + exitCodesHelp,
		Example: `  ferry invoke hello --data '{"name": "Ferry"}'
  ferry invoke hello --alias prod
  ferry invoke resize --data @event.json --async
  ferry invoke slow --follow
  ferry invoke hello -o json | jq .result`,
		Args: exactArgs(1, "a function NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if opts.async && opts.follow {
				return usageError("--async and --follow exclude each other")
			}
			wait := "running " + args[0]
			if opts.follow {
				wait = ""
			}
			status, body, err := c.postInvoke(cmd, "/v1/functions/"+url.PathEscape(args[0])+"/invoke", wait, opts)
			if err != nil {
				return err
			}
			var inv invocationRecord
			if err := jsonUnmarshal(body, &inv); err != nil {
				return err
			}
			if opts.async {
				if c.json {
					return c.printJSON(body)
				}
				fmt.Fprintln(c.stdout, inv.ID)
				return nil
			}
			if opts.follow {
				// The logs end when the invocation does; then its record.
				if err := c.followLogs(cmd.Context(), inv.ID, c.stderr); err != nil {
					return err
				}
			}
			if status == 202 || !final(inv.Status) {
				// The server stopped waiting; keep polling the record.
				if body, err = c.pollFinal(cmd.Context(), inv.ID, "running "+args[0]); err != nil {
					return err
				}
				if err := jsonUnmarshal(body, &inv); err != nil {
					return err
				}
			}
			return c.printInvocationResult(body, inv)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.data, "data", "d", "", "event: JSON, @file, or @- for stdin (default null)")
	fl.BoolVar(&opts.async, "async", false, "do not wait: print the invocation id")
	fl.BoolVarP(&opts.follow, "follow", "f", false, "print the function's logs on stderr as they are written")
	fl.IntVar(&opts.version, "version", 0, "invoke this version instead of the latest")
	fl.StringVar(&opts.alias, "alias", "", "invoke the version this alias picks (see ferry alias)")
	fl.StringVar(&opts.idempotencyKey, "idempotency-key", "", "same key, same invocation: a retried command never runs the function twice")
	return cmd
}

// pollFinal polls an invocation until it is final.
func (c *client) pollFinal(ctx context.Context, id, label string) ([]byte, error) {
	stop := startProgress(c.stderr, label)
	defer stop()
	delay := 200 * time.Millisecond
	for {
		var inv invocationRecord
		body, err := c.getJSON(ctx, "/v1/invocations/"+url.PathEscape(id), &inv)
		if err != nil || final(inv.Status) {
			return body, err
		}
		select {
		case <-ctx.Done():
			return nil, &cliError{code: exitServer, msg: "interrupted while waiting for invocation " + id}
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// printInvocationResult prints a final invocation: the result on stdout, a
// status line on stderr; exit code 1 unless it completed.
func (c *client) printInvocationResult(body []byte, inv invocationRecord) error {
	if c.json {
		if err := c.printJSON(body); err != nil {
			return err
		}
	} else if len(inv.Result) > 0 {
		if err := c.printJSON(inv.Result); err != nil {
			return err
		}
	}
	if !c.json {
		fmt.Fprintln(c.stderr, statusLine(inv))
	}
	if inv.Status == "completed" {
		return nil
	}
	msg := fmt.Sprintf("invocation %s %s", inv.ID, inv.Status)
	if inv.Error != nil {
		msg += ": " + inv.Error.Type + ": " + inv.Error.Message
	}
	return &cliError{code: exitFunctionFailed, msg: msg}
}

func statusLine(inv invocationRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s v%d: %s", inv.ID, inv.Function, inv.Version, inv.Status)
	if m := inv.Metrics; m != nil {
		fmt.Fprintf(&b, " in %.1f ms", m.DurationMS)
		if m.Cold {
			fmt.Fprintf(&b, " (cold start %.0f ms)", m.InitMS)
		}
	}
	if inv.Error != nil && inv.Error.Stack != "" {
		fmt.Fprintf(&b, "\n%s", strings.TrimRight(inv.Error.Stack, "\n"))
	}
	return b.String()
}

func durationOf(inv invocationRecord) string {
	if inv.Metrics == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", inv.Metrics.DurationMS)
}

func invocationsCommand(cfg *clientConfig) *cobra.Command {
	var function, status string
	var limit int
	cmd := &cobra.Command{
		Use:   "invocations",
		Short: "List invocations, newest first (--status failed is the dead-letter list)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if limit < 1 {
				return usageError("--limit must be at least 1")
			}
			q := url.Values{}
			if function != "" {
				q.Set("function", function)
			}
			if status != "" {
				q.Set("status", status)
			}
			path := "/v1/invocations"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			invs, err := fetchAll[invocationRecord](c, cmd, path, "invocations", limit)
			if err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"invocations": nonNil(invs)})
			}
			tw := c.table("ID", "FUNCTION", "VERSION", "STATUS", "DURATION", "CREATED")
			for _, inv := range invs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", inv.ID, inv.Function, inv.Version, inv.Status, durationOf(inv), shortTime(inv.CreatedAt))
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&function, "function", "", "only this function's invocations")
	fl.StringVar(&status, "status", "", "only this status: pending, running, completed, failed, timeout, cancelled")
	fl.IntVar(&limit, "limit", 20, "at most this many")
	return cmd
}

func logsCommand(cfg *clientConfig) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print an invocation's captured stdout and stderr (-f: as they are written, until it ends)",
		Args:  exactArgs(1, "an invocation ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if follow {
				return c.followLogs(cmd.Context(), args[0], c.stdout)
			}
			_, _, body, err := c.do(cmd.Context(), request{method: "GET", path: "/v1/invocations/" + url.PathEscape(args[0]) + "/logs"})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			var l struct {
				Logs string `json:"logs"`
			}
			if err := jsonUnmarshal(body, &l); err != nil {
				return err
			}
			_, err = io.WriteString(c.stdout, l.Logs)
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "print the logs as they are written, until the invocation ends")
	return cmd
}

// followLogs copies an invocation's logs to w as they are written, until it ends.
func (c *client) followLogs(ctx context.Context, id string, w io.Writer) error {
	_, _, _, err := c.do(ctx, request{method: "GET", path: "/v1/invocations/" + url.PathEscape(id) + "/logs?follow=true",
		headers: map[string]string{"Accept": "text/plain"}, stream: w})
	return err
}

func cancelCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a pending or running invocation",
		Args:  exactArgs(1, "an invocation ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			_, _, body, err := c.do(cmd.Context(), request{method: "POST", path: "/v1/invocations/" + url.PathEscape(args[0]) + "/cancel", wait: "cancelling"})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			var inv invocationRecord
			if err := jsonUnmarshal(body, &inv); err != nil {
				return err
			}
			if final(inv.Status) {
				fmt.Fprintf(c.stdout, "%s %s\n", inv.ID, inv.Status)
			} else {
				fmt.Fprintf(c.stdout, "%s cancel requested (still %s)\n", inv.ID, inv.Status)
			}
			return nil
		},
	}
}

func retryCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "retry ID",
		Short: "Re-run a failed, timed-out or cancelled invocation; prints the new invocation id",
		Args:  exactArgs(1, "an invocation ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			_, _, body, err := c.do(cmd.Context(), request{method: "POST", path: "/v1/invocations/" + url.PathEscape(args[0]) + "/retry"})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			var inv invocationRecord
			if err := jsonUnmarshal(body, &inv); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, inv.ID)
			return nil
		},
	}
}
