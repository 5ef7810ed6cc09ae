package ferry

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// An *Error keeps its cause: errors.Is and errors.As see through it (also when
// it is wrapped again), the user sees only the message, the logs the cause.
func TestErrorKeepsItsCause(t *testing.T) {
	cause := fmt.Errorf("dial tcp: %w", context.DeadlineExceeded)
	err := fmt.Errorf("saving: %w", Wrap(cause, EUNAVAILABLE, "PostgreSQL is unavailable: timed out"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is does not find the cause through %v", err)
	}
	var fe *Error
	if !errors.As(err, &fe) || fe.Err != cause {
		t.Errorf("errors.As: %#v", fe)
	}
	if ErrorCode(err) != EUNAVAILABLE || ErrorMessage(err) != "PostgreSQL is unavailable: timed out" {
		t.Errorf("code %q, message %q", ErrorCode(err), ErrorMessage(err))
	}
	if got, want := fe.Error(), "unavailable: PostgreSQL is unavailable: timed out (dial tcp: context deadline exceeded)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// A message that already says the cause does not repeat it.
	if got, want := Wrap(cause, EINTERNAL, "connecting: %v", cause).Error(), "internal: connecting: dial tcp: context deadline exceeded"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := Errorf(EINVALID, "bad").Error(); got != "invalid: bad" || errors.Unwrap(Errorf(EINVALID, "bad")) != nil {
		t.Errorf("an error without a cause: %q", got)
	}
}
