package ferry

import (
	"math"
	"testing"
)

// TestLimitsValidate pins every bound of docs/API.md, zero meaning the
// default, and the messages that name the field and the value.
func TestLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		l   Limits
		msg string // "" when valid
	}{
		{Limits{}, ""},
		{MinLimits, ""},
		{MaxLimits, ""},
		{Limits{CPUs: 1e-9}, "cpus: must be between 0.01 and 4 (0 for the default 0.5), not 1e-09"},
		{Limits{CPUs: 0.0099}, "cpus: must be between 0.01 and 4 (0 for the default 0.5), not 0.0099"},
		{Limits{CPUs: 4.01}, "cpus: must be between 0.01 and 4 (0 for the default 0.5), not 4.01"},
		{Limits{CPUs: -1}, "cpus: must be between 0.01 and 4 (0 for the default 0.5), not -1"},
		{Limits{CPUs: math.NaN()}, "cpus: must be a finite number, not NaN"},
		{Limits{CPUs: math.Inf(1)}, "cpus: must be a finite number, not +Inf"},
		{Limits{MemoryMB: 31}, "memory_mb: must be between 32 and 4096 (0 for the default 128), not 31"},
		{Limits{MemoryMB: 4097}, "memory_mb: must be between 32 and 4096 (0 for the default 128), not 4097"},
		{Limits{TimeoutSeconds: -1}, "timeout_seconds: must be between 1 and 900 (0 for the default 30), not -1"},
		{Limits{TimeoutSeconds: 901}, "timeout_seconds: must be between 1 and 900 (0 for the default 30), not 901"},
		{Limits{MaxConcurrency: 101}, "max_concurrency: must be between 1 and 100 (0 for the default 10), not 101"},
		{Limits{MaxConcurrency: -3}, "max_concurrency: must be between 1 and 100 (0 for the default 10), not -3"},
		{Limits{Retries: 11}, "retries: must be between 0 and 10, not 11"},
		{Limits{Retries: -1}, "retries: must be between 0 and 10, not -1"},
	} {
		err := tc.l.Validate()
		if got := ErrorMessage(err); got != tc.msg || (err != nil && ErrorCode(err) != EINVALID) {
			t.Errorf("%+v: %v, want %q", tc.l, err, tc.msg)
		}
	}
}
