package ferry

import (
	"fmt"
	"strings"
	"testing"
)

func TestAliasTargetValidate(t *testing.T) {
	for _, tc := range []struct {
		t    AliasTarget
		want string // "" for valid
	}{
		{AliasTarget{Version: 1}, ""},
		{AliasTarget{Version: 1, AdditionalVersion: 2, AdditionalWeight: 0.1}, ""},
		{AliasTarget{}, "version: must be between"},
		{AliasTarget{Version: 1, AdditionalWeight: 0.1}, "additional_weight: needs additional_version"},
		{AliasTarget{Version: 1, AdditionalVersion: 1, AdditionalWeight: 0.1}, "must differ"},
		{AliasTarget{Version: 1, AdditionalVersion: 2}, "additional_weight: must be a fraction"},
		{AliasTarget{Version: 1, AdditionalVersion: 2, AdditionalWeight: 1}, "additional_weight: must be a fraction"},
		{AliasTarget{Version: 1, AdditionalVersion: -2, AdditionalWeight: 0.5}, "additional_version: must be between"},
	} {
		err := tc.t.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.t, err, tc.want)
		}
	}
}

// TestAliasDrawIsUniform checks the draw that deterministic picks (by
// Idempotency-Key, chain run, schedule firing) use: same seed, same number, and
// a 90/10 split holds over many seeds.
func TestAliasDrawIsUniform(t *testing.T) {
	if AliasDraw("a") != AliasDraw("a") || AliasDraw("a") == AliasDraw("b") {
		t.Fatal("AliasDraw is not a function of its seed")
	}
	split := AliasTarget{Version: 1, AdditionalVersion: 2, AdditionalWeight: 0.1}
	n := map[int]int{}
	for i := 0; i < 10000; i++ {
		u := AliasDraw(fmt.Sprint("key-", i))
		if u < 0 || u >= 1 {
			t.Fatalf("draw %v outside [0, 1)", u)
		}
		n[split.Pick(u)]++
	}
	if n[2] < 900 || n[2] > 1100 {
		t.Fatalf("10000 draws at 90/10 gave %v", n)
	}
}
