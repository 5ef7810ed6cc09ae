package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
)

// statusOf maps an error code to its HTTP status.
var statusOf = map[string]int{
	ferry.EINVALID:       http.StatusBadRequest,
	ferry.EUNAUTHORIZED:  http.StatusUnauthorized,
	ferry.EFORBIDDEN:     http.StatusForbidden,
	ferry.ENOTFOUND:      http.StatusNotFound,
	ferry.ECONFLICT:      http.StatusConflict,
	ferry.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	ferry.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	ferry.ETOOMANY:       http.StatusTooManyRequests,
	ferry.EUNAVAILABLE:   http.StatusServiceUnavailable,
	ferry.EINTERNAL:      http.StatusInternalServerError,
}

// codeOfStatus maps Echo's own errors (no route, wrong method, ...) to a code.
func codeOfStatus(status int) string {
	for code, s := range statusOf {
		if s == status {
			return code
		}
	}
	if status == http.StatusMethodNotAllowed {
		return ferry.ENOTFOUND
	}
	if status >= 500 {
		return ferry.EINTERNAL
	}
	return ferry.EINVALID
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error ferry.Error `json:"error"`
}

// handleError is Echo's one HTTPErrorHandler: *ferry.Error codes become statuses,
// Echo's errors keep theirs, anything else is logged and answered as 500 without
// details.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := s.errorResponse(err, c)
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
	}
	if werr := c.JSON(status, body); werr != nil {
		s.Logger.Warn("writing error response", "err", werr, "request_id", requestIDOf(c))
	}
}

func (s *server) errorResponse(err error, c echo.Context) (int, errorBody) {
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || isBodyTooLarge(err):
		return http.StatusRequestEntityTooLarge, errorBody{ferry.Error{Code: ferry.ETOOLARGE,
			Message: "request body is larger than the limit of " + byteSize(s.bodyLimitOf(c))}}
	case errors.As(err, &he):
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && m != "" {
			msg = m
		}
		switch he.Code {
		case http.StatusNotFound:
			msg = "no route " + c.Request().Method + " " + c.Request().URL.Path
		case http.StatusMethodNotAllowed:
			msg = "method " + c.Request().Method + " is not allowed on " + c.Request().URL.Path
		}
		if he.Code >= 500 {
			s.Logger.Error("request failed", "err", err, "request_id", requestIDOf(c))
			msg = "internal error"
		}
		return he.Code, errorBody{ferry.Error{Code: codeOfStatus(he.Code), Message: msg}}
	}
	code := ferry.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status, code = http.StatusInternalServerError, ferry.EINTERNAL
	}
	msg := ferry.ErrorMessage(err)
	if code == ferry.EINTERNAL {
		// The details (driver errors, stack of causes) go to the log only.
		s.Logger.Error("request failed", "err", err, "request_id", requestIDOf(c),
			"method", c.Request().Method, "path", c.Request().URL.Path)
		msg = "internal error (request id " + requestIDOf(c) + ")"
	}
	return status, errorBody{ferry.Error{Code: code, Message: msg}}
}

// isBodyTooLarge catches MaxBytesReader errors that were flattened into text
// (mime/multipart does not wrap them).
func isBodyTooLarge(err error) bool {
	return err != nil && strings.Contains(err.Error(), "http: request body too large")
}
