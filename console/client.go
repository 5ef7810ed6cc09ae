package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/ferry-faas/ferry"
)

// apiError is an error answer of the API (or of the console itself), shown
// with the API's status and message.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// asAPIError returns err as an *apiError; any other error is a 500.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return &apiError{Status: http.StatusInternalServerError, Code: ferry.EINTERNAL, Message: "internal error"}
}

// apiClient calls the REST API's handler in this process with one API key,
// as a remote client would: the API authenticates the key and checks every
// permission.
type apiClient struct {
	h   http.Handler
	r   *http.Request // the console request: context, remote address
	key string
}

func (c *console) apiFor(r *http.Request, key string) *apiClient {
	return &apiClient{h: c.API, r: r, key: key}
}

func (c *console) api(r *http.Request, s *session) *apiClient { return c.apiFor(r, s.key) }

// response is what the API answered.
type response struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (w *response) Header() http.Header { return w.header }
func (w *response) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
func (w *response) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// do sends one request; body is JSON unless contentType says otherwise. A 4xx
// or 5xx answer is an *apiError; otherwise the body is decoded into out (when
// not nil).
func (a *apiClient) do(method, path string, body []byte, header http.Header, out any) (*response, error) {
	req, err := a.request(method, path, body, "application/json")
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res := &response{header: http.Header{}}
	a.h.ServeHTTP(res, req)
	if res.status == 0 {
		res.status = http.StatusOK
	}
	if res.status >= 400 {
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		ae := &apiError{Status: res.status, Code: ferry.EINTERNAL, Message: http.StatusText(res.status)}
		if json.Unmarshal(res.body.Bytes(), &eb) == nil && eb.Error.Message != "" {
			ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
		}
		return res, ae
	}
	if out != nil {
		if err := json.Unmarshal(res.body.Bytes(), out); err != nil {
			return res, fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
		}
	}
	return res, nil
}

// request is a request to the API with the key, from the console request's
// client.
func (a *apiClient) request(method, path string, body []byte, accept string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(a.r.Context(), method, path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Accept", accept)
	req.RemoteAddr = a.r.RemoteAddr
	return req, nil
}

// stream answers w with the API's own answer to GET path, written (and
// flushed) as the API writes it: for streams such as a log follow.
func (a *apiClient) stream(w http.ResponseWriter, path, accept string) {
	req, err := a.request(http.MethodGet, path, nil, accept)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	a.h.ServeHTTP(w, req)
}

func (a *apiClient) get(path string, out any) error {
	_, err := a.do(http.MethodGet, path, nil, nil, out)
	return err
}

func (a *apiClient) post(path string, body []byte, out any) error {
	if body == nil {
		body = []byte{}
	}
	_, err := a.do(http.MethodPost, path, body, nil, out)
	return err
}

// pathEscape escapes one path segment.
func pathEscape(s string) string { return url.PathEscape(s) }

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
