package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

// Invoke says how to invoke: all fields are optional.
type Invoke struct {
	Version        int    // 0: the latest
	Alias          string // the version this alias picks (instead of Version)
	Async          bool   // answer at once with the pending record (202)
	IdempotencyKey string // same key, same invocation (the Idempotency-Key header)
}

// Invoke runs the function name with event (nil sends an empty body, which
// the API reads as null). Without Async it waits for the end as long as the
// server does; the record it returns may still be pending or running when
// the server stopped waiting (Wait finishes the wait). A function that
// failed is not an error: read the record's Status.
func (c *Client) Invoke(ctx context.Context, name string, event json.RawMessage, o Invoke) (ferry.Invocation, error) {
	q := url.Values{}
	if o.Version != 0 {
		q.Set("version", strconv.Itoa(o.Version))
	}
	if o.Alias != "" {
		q.Set("alias", o.Alias)
	}
	if o.Async {
		q.Set("async", "true")
	}
	r := Request{Method: http.MethodPost, Path: "/v1/functions/" + escape(name) + "/invoke", Query: q,
		Body: bytes.NewReader(event), ContentType: "application/json"}
	if o.IdempotencyKey != "" {
		r.Header = http.Header{"Idempotency-Key": {o.IdempotencyKey}}
	}
	var inv ferry.Invocation
	_, err := c.call(ctx, r, &inv)
	return inv, err
}

// Invocation returns an invocation's record.
func (c *Client) Invocation(ctx context.Context, id string) (ferry.Invocation, error) {
	var inv ferry.Invocation
	_, err := c.call(ctx, Request{Method: http.MethodGet, Path: "/v1/invocations/" + escape(id)}, &inv)
	return inv, err
}

// Wait polls an invocation until its status is final (from every 200 ms up
// to every 2 s) or ctx ends.
func (c *Client) Wait(ctx context.Context, id string) (ferry.Invocation, error) {
	delay := 200 * time.Millisecond
	for {
		inv, err := c.Invocation(ctx, id)
		if err != nil || inv.Status.Final() {
			return inv, err
		}
		select {
		case <-ctx.Done():
			return inv, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// InvocationFilter selects invocations; zero fields select all.
type InvocationFilter struct {
	Function string
	Status   ferry.InvocationStatus
}

// Invocations lists invocations, newest first, at most max (0: all).
func (c *Client) Invocations(ctx context.Context, f InvocationFilter, max int) ([]ferry.Invocation, error) {
	q := url.Values{}
	if f.Function != "" {
		q.Set("function", f.Function)
	}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	return List[ferry.Invocation](ctx, c, "/v1/invocations", q, "invocations", max)
}

// InvocationLogs is what an invocation wrote to stdout and stderr.
type InvocationLogs struct {
	ID     uuid.UUID              `json:"id"`
	Status ferry.InvocationStatus `json:"status"`
	Logs   string                 `json:"logs"`
}

// Logs returns what an invocation wrote to stdout and stderr so far.
func (c *Client) Logs(ctx context.Context, id string) (InvocationLogs, error) {
	var l InvocationLogs
	_, err := c.call(ctx, Request{Method: http.MethodGet, Path: "/v1/invocations/" + escape(id) + "/logs"}, &l)
	return l, err
}

// Cancel asks to cancel a pending or running invocation and returns its
// record: final when the cancellation took effect in time, otherwise still
// pending or running.
func (c *Client) Cancel(ctx context.Context, id string) (ferry.Invocation, error) {
	var inv ferry.Invocation
	_, err := c.call(ctx, Request{Method: http.MethodPost, Path: "/v1/invocations/" + escape(id) + "/cancel"}, &inv)
	return inv, err
}

// Retry re-runs a failed, timed-out or cancelled invocation and returns the
// new invocation (pending).
func (c *Client) Retry(ctx context.Context, id string) (ferry.Invocation, error) {
	var inv ferry.Invocation
	_, err := c.call(ctx, Request{Method: http.MethodPost, Path: "/v1/invocations/" + escape(id) + "/retry"}, &inv)
	return inv, err
}
