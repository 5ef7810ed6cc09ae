// Package client is a typed Go client of Ferry's REST API (docs/API.md). It
// sends and returns Ferry's own types (ferry.Version, ferry.Invocation, ...)
// and turns every error answer back into the code the server chose, so that
// ferry.ErrorCode works on its errors as on the server's.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ferry-faas/ferry"
)

// Client calls one Ferry API. Its zero value is not usable: set URL.
type Client struct {
	URL    string       // base URL, such as http://127.0.0.1:8080
	APIKey string       // sent as a bearer token; "" sends none
	HTTP   *http.Client // nil: http.DefaultClient
}

// New returns a client of the API at url, authenticating with apiKey.
func New(url, apiKey string) *Client { return &Client{URL: url, APIKey: apiKey} }

// Error is an answer with a status of 300 or more, or no answer at all
// (StatusCode 0, code ferry.EUNAVAILABLE). Its Unwrap gives the *ferry.Error
// with the server's code, which ferry.ErrorCode and ferry.ErrorMessage read.
type Error struct {
	StatusCode int
	Code       string // one of ferry's error codes
	Message    string
}

func (e *Error) Error() string {
	if e.StatusCode < 300 { // no answer, or one that could not be read
		return e.Message
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.StatusCode)
}

func (e *Error) Unwrap() error { return &ferry.Error{Code: e.Code, Message: e.Message} }

// codeOf maps a status to an error code when the answer names none (a proxy's
// answer, say): the inverse of the API's own mapping (docs/API.md, "Errors").
func codeOf(status int) string {
	switch status {
	case http.StatusBadRequest:
		return ferry.EINVALID
	case http.StatusUnauthorized:
		return ferry.EUNAUTHORIZED
	case http.StatusForbidden:
		return ferry.EFORBIDDEN
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return ferry.ENOTFOUND
	case http.StatusConflict:
		return ferry.ECONFLICT
	case http.StatusRequestEntityTooLarge:
		return ferry.ETOOLARGE
	case http.StatusUnprocessableEntity:
		return ferry.EUNPROCESSABLE
	case http.StatusTooManyRequests:
		return ferry.ETOOMANY
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return ferry.EUNAVAILABLE
	}
	if status >= 500 {
		return ferry.EINTERNAL
	}
	return ferry.EINVALID
}

// Request is one API call for Do.
type Request struct {
	Method      string
	Path        string // such as /v1/functions; Query is added to it
	Query       url.Values
	Body        io.Reader
	ContentType string
	Header      http.Header
	// Stream, when set, receives a 2xx answer's body as it arrives (a
	// followed log); the Response then has no Body.
	Stream io.Writer
}

// Response is a 2xx answer, read whole.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Do sends r and returns a 2xx answer; anything else is an *Error.
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	u := strings.TrimRight(c.URL, "/") + r.Path
	if len(r.Query) > 0 {
		u += "?" + r.Query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, r.Body)
	if err != nil {
		return nil, &Error{Code: ferry.EINVALID, Message: err.Error()}
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &Error{Code: ferry.EUNAVAILABLE, Message: fmt.Sprintf("cannot reach the Ferry API at %s: %v", c.URL, err)}
	}
	defer res.Body.Close()
	if r.Stream != nil && res.StatusCode < 300 {
		if _, err := io.Copy(r.Stream, res.Body); err != nil {
			return nil, &Error{Code: ferry.EUNAVAILABLE, Message: fmt.Sprintf("reading the answer of %s %s: %v", r.Method, r.Path, err)}
		}
		return &Response{StatusCode: res.StatusCode, Header: res.Header}, nil
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, &Error{Code: ferry.EUNAVAILABLE, Message: fmt.Sprintf("reading the answer of %s %s: %v", r.Method, r.Path, err)}
	}
	if res.StatusCode < 300 {
		return &Response{StatusCode: res.StatusCode, Header: res.Header, Body: body}, nil
	}
	e := &Error{StatusCode: res.StatusCode, Code: codeOf(res.StatusCode), Message: strings.TrimSpace(string(body))}
	var eb struct {
		Error ferry.Error `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error.Message != "" {
		e.Message = eb.Error.Message
		if eb.Error.Code != "" {
			e.Code = eb.Error.Code
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(res.StatusCode)
	}
	return nil, e
}

// call sends r and decodes a 2xx answer's body into out (unless out is nil).
func (c *Client) call(ctx context.Context, r Request, out any) (*Response, error) {
	res, err := c.Do(ctx, r)
	if err != nil {
		return nil, err
	}
	if out != nil && len(res.Body) > 0 {
		if err := json.Unmarshal(res.Body, out); err != nil {
			return nil, &Error{StatusCode: res.StatusCode, Code: ferry.EINTERNAL,
				Message: fmt.Sprintf("unexpected answer to %s %s: %v", r.Method, r.Path, err)}
		}
	}
	return res, nil
}

func jsonRequest(method, path string, v any) Request {
	b, _ := json.Marshal(v)
	return Request{Method: method, Path: path, Body: bytes.NewReader(b), ContentType: "application/json"}
}

// List fetches every page of a listing (GET path with query q), following
// next_cursor, until max items (0: all). field names the items' array in a
// page, such as "functions".
func List[T any](ctx context.Context, c *Client, path string, q url.Values, field string, max int) ([]T, error) {
	all := []T{}
	cursor := ""
	for {
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		limit := 200
		if max > 0 && max-len(all) < limit {
			limit = max - len(all)
		}
		pq.Set("limit", strconv.Itoa(limit))
		if cursor != "" {
			pq.Set("cursor", cursor)
		}
		var page map[string]json.RawMessage
		if _, err := c.call(ctx, Request{Method: http.MethodGet, Path: path, Query: pq}, &page); err != nil {
			return nil, err
		}
		var items []T
		if raw := page[field]; len(raw) > 0 {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, &Error{StatusCode: http.StatusOK, Code: ferry.EINTERNAL, Message: fmt.Sprintf("unexpected %s page: %v", field, err)}
			}
		}
		all = append(all, items...)
		cursor = ""
		if raw := page["next_cursor"]; len(raw) > 0 {
			_ = json.Unmarshal(raw, &cursor)
		}
		if cursor == "" || (max > 0 && len(all) >= max) {
			return all, nil
		}
	}
}

func escape(s string) string { return url.PathEscape(s) }
