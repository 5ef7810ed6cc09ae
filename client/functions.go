package client

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferry-faas/ferry"
)

// Deploy is a new version of a function (POST /v1/functions). Zero limits
// mean the defaults; Network is sent only when set.
type Deploy struct {
	Name        string
	Runtime     ferry.Runtime
	Handler     string
	Code        []byte // a .zip, .tar.gz or one source file
	Filename    string // the code's file name, for messages and a single file's extension
	Limits      ferry.Limits
	Env         map[string]string
	Secrets     []string // names of secrets the function reads as env variables of those names
	Description string
}

// Deploy uploads d as a multipart form and returns the version created.
func (c *Client) Deploy(ctx context.Context, d Deploy) (ferry.Version, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	field := func(k, v string) { _ = mw.WriteField(k, v) } // writes to memory: no error
	field("name", d.Name)
	field("runtime", string(d.Runtime))
	field("handler", d.Handler)
	for k, v := range map[string]int{"timeout_seconds": d.Limits.TimeoutSeconds, "memory_mb": d.Limits.MemoryMB,
		"retries": d.Limits.Retries, "max_concurrency": d.Limits.MaxConcurrency} {
		if v != 0 {
			field(k, strconv.Itoa(v))
		}
	}
	if d.Limits.CPUs != 0 {
		field("cpus", strconv.FormatFloat(d.Limits.CPUs, 'f', -1, 64))
	}
	if d.Limits.Network {
		field("network", "true")
	}
	if d.Description != "" {
		field("description", d.Description)
	}
	for k, v := range d.Env {
		field("env", k+"="+v)
	}
	for _, name := range d.Secrets {
		field("secrets", name)
	}
	fw, _ := mw.CreateFormFile("code", d.Filename)
	_, _ = fw.Write(d.Code)
	_ = mw.Close()
	var v ferry.Version
	_, err := c.call(ctx, Request{Method: http.MethodPost, Path: "/v1/functions", Body: &buf,
		ContentType: mw.FormDataContentType()}, &v)
	return v, err
}

// Function returns a version of the function name: the latest when version
// is 0.
func (c *Client) Function(ctx context.Context, name string, version int) (ferry.Version, error) {
	var q url.Values
	if version != 0 {
		q = url.Values{"version": {strconv.Itoa(version)}}
	}
	var v ferry.Version
	_, err := c.call(ctx, Request{Method: http.MethodGet, Path: "/v1/functions/" + escape(name), Query: q}, &v)
	return v, err
}

// Functions lists the functions the key may read, at most max (0: all).
func (c *Client) Functions(ctx context.Context, max int) ([]ferry.Function, error) {
	return List[ferry.Function](ctx, c, "/v1/functions", nil, "functions", max)
}

// Versions lists the versions of a function, newest first, at most max (0: all).
func (c *Client) Versions(ctx context.Context, name string, max int) ([]ferry.Version, error) {
	return List[ferry.Version](ctx, c, "/v1/functions/"+escape(name)+"/versions", nil, "versions", max)
}

// DeleteFunction deletes a function with all its versions and code.
func (c *Client) DeleteFunction(ctx context.Context, name string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/functions/" + escape(name)})
	return err
}
