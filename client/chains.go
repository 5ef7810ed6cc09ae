package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferry-faas/ferry"
)

// DeployChain creates a new version of the chain name.
func (c *Client) DeployChain(ctx context.Context, name, description string, steps []ferry.Step) (ferry.ChainVersion, error) {
	var v ferry.ChainVersion
	_, err := c.call(ctx, jsonRequest(http.MethodPost, "/v1/chains",
		map[string]any{"name": name, "description": description, "steps": steps}), &v)
	return v, err
}

// RunChain runs the chain name with input, as Invoke runs a function: without
// Async it waits as long as the server does, and a failed run is not an
// error (read the run's Status).
func (c *Client) RunChain(ctx context.Context, name string, input json.RawMessage, o Invoke) (ferry.ChainRun, error) {
	q := url.Values{}
	if o.Version != 0 {
		q.Set("version", strconv.Itoa(o.Version))
	}
	if o.Async {
		q.Set("async", "true")
	}
	r := Request{Method: http.MethodPost, Path: "/v1/chains/" + escape(name) + "/invoke", Query: q,
		Body: bytes.NewReader(input), ContentType: "application/json"}
	if o.IdempotencyKey != "" {
		r.Header = http.Header{"Idempotency-Key": {o.IdempotencyKey}}
	}
	var run ferry.ChainRun
	_, err := c.call(ctx, r, &run)
	return run, err
}

// DeleteChain deletes a chain and its versions (its runs stay).
func (c *Client) DeleteChain(ctx context.Context, name string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/chains/" + escape(name)})
	return err
}
