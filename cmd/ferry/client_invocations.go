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

	"github.com/spf13/cobra"

	"github.com/ferry-faas/ferry"
	apiclient "github.com/ferry-faas/ferry/client"
)

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

// readEvent reads --data and checks that it is JSON (or empty: null).
func readEvent(cmd *cobra.Command, data string) ([]byte, error) {
	input, err := readData(data, cmd.InOrStdin())
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(input))) > 0 && !json.Valid(input) {
		return nil, usageError("--data is not valid JSON")
	}
	return input, nil
}

// postInvoke sends the --data input to an invoke endpoint and returns the
// server's status and body.
func (c *client) postInvoke(cmd *cobra.Command, path, wait string, opts invokeOptions) (int, []byte, error) {
	input, err := readEvent(cmd, opts.data)
	if err != nil {
		return 0, nil, err
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
			event, err := readEvent(cmd, opts.data)
			if err != nil {
				return err
			}
			var inv ferry.Invocation
			err = c.waiting(wait, func() (err error) {
				inv, err = c.api.Invoke(cmd.Context(), args[0], event, apiclient.Invoke{Version: opts.version, Alias: opts.alias,
					Async: opts.async || opts.follow, IdempotencyKey: opts.idempotencyKey})
				return err
			})
			if err != nil {
				return err
			}
			if opts.async {
				if c.json {
					return c.printValue(inv)
				}
				fmt.Fprintln(c.stdout, inv.ID)
				return nil
			}
			if opts.follow {
				// The logs end when the invocation does; then its record.
				if err := c.followLogs(cmd.Context(), inv.ID.String(), c.stderr); err != nil {
					return err
				}
			}
			if !inv.Status.Final() {
				// The server stopped waiting; keep polling the record.
				if inv, err = c.pollFinal(cmd.Context(), inv.ID.String(), "running "+args[0]); err != nil {
					return err
				}
			}
			return c.printInvocationResult(inv)
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
func (c *client) pollFinal(ctx context.Context, id, label string) (ferry.Invocation, error) {
	var inv ferry.Invocation
	err := c.waiting(label, func() (err error) {
		inv, err = c.api.Wait(ctx, id)
		return err
	})
	if err != nil && ctx.Err() != nil {
		return inv, &cliError{code: exitServer, msg: "interrupted while waiting for invocation " + id}
	}
	return inv, err
}

// printInvocationResult prints a final invocation: the result on stdout, a
// status line on stderr; exit code 1 unless it completed.
func (c *client) printInvocationResult(inv ferry.Invocation) error {
	if c.json {
		if err := c.printValue(inv); err != nil {
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
	if inv.Status == ferry.StatusCompleted {
		return nil
	}
	msg := fmt.Sprintf("invocation %s %s", inv.ID, inv.Status)
	if inv.Error != nil {
		msg += ": " + inv.Error.Type + ": " + inv.Error.Message
	}
	return &cliError{code: exitFunctionFailed, msg: msg}
}

func statusLine(inv ferry.Invocation) string {
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

func durationOf(inv ferry.Invocation) string {
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
			var invs []ferry.Invocation
			err = c.waiting("", func() (err error) {
				invs, err = c.api.Invocations(cmd.Context(),
					apiclient.InvocationFilter{Function: function, Status: ferry.InvocationStatus(status)}, limit)
				return err
			})
			if err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"invocations": invs})
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
			var l apiclient.InvocationLogs
			if err := c.waiting("", func() (err error) { l, err = c.api.Logs(cmd.Context(), args[0]); return err }); err != nil {
				return err
			}
			if c.json {
				return c.printValue(l)
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

// invocationCommand is an action on one invocation (cancel, retry) that
// returns an invocation record, printed by show unless -o json.
func invocationCommand(cfg *clientConfig, use, short, wait string,
	act func(c *apiclient.Client, ctx context.Context, id string) (ferry.Invocation, error),
	show func(c *client, inv ferry.Invocation)) *cobra.Command {
	return &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  exactArgs(1, "an invocation ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var inv ferry.Invocation
			if err := c.waiting(wait, func() (err error) { inv, err = act(c.api, cmd.Context(), args[0]); return err }); err != nil {
				return err
			}
			if c.json {
				return c.printValue(inv)
			}
			show(c, inv)
			return nil
		},
	}
}

func cancelCommand(cfg *clientConfig) *cobra.Command {
	return invocationCommand(cfg, "cancel", "Cancel a pending or running invocation", "cancelling",
		(*apiclient.Client).Cancel, func(c *client, inv ferry.Invocation) {
			if inv.Status.Final() {
				fmt.Fprintf(c.stdout, "%s %s\n", inv.ID, inv.Status)
			} else {
				fmt.Fprintf(c.stdout, "%s cancel requested (still %s)\n", inv.ID, inv.Status)
			}
		})
}

func retryCommand(cfg *clientConfig) *cobra.Command {
	return invocationCommand(cfg, "retry", "Re-run a failed, timed-out or cancelled invocation; prints the new invocation id", "",
		(*apiclient.Client).Retry, func(c *client, inv ferry.Invocation) { fmt.Fprintln(c.stdout, inv.ID) })
}
