package ferry

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. Every layer returns *Error (or wraps one); the API turns the code
// into an HTTP status exactly once, at the edge.
const (
	EINVALID       = "invalid"       // 400
	EUNAUTHORIZED  = "unauthorized"  // 401
	EFORBIDDEN     = "forbidden"     // 403
	ENOTFOUND      = "not_found"     // 404
	ECONFLICT      = "conflict"      // 409
	ETOOLARGE      = "too_large"     // 413
	EUNPROCESSABLE = "unprocessable" // 422
	ETOOMANY       = "too_many"      // 429
	EUNAVAILABLE   = "unavailable"   // 503
	EINTERNAL      = "internal"      // 500
)

// Error is an application error with a machine-readable code and a message that
// is safe to show to the user. Err, when set, is its cause (a driver's, Docker's,
// the file system's): kept for the logs and for errors.Is and errors.As, never
// shown to the user.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Err     error  `json:"-"`
}

// Error is the code and the message, then the cause in parentheses unless the
// message already says it.
func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Err != nil {
		if c := e.Err.Error(); !strings.Contains(e.Message, c) {
			s += " (" + c + ")"
		}
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf is a helper that returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with a formatted message whose cause is err.
func Wrap(err error, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the user-facing message of err: the *Error's message, or a
// generic text for internal errors (their details go to the logs, not the user).
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}
