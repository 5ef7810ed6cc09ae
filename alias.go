package ferry

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Alias is a name for a function's version that callers use instead of a
// number (`?alias=prod`), so that a deploy changes nothing for them until the
// alias moves. Like Lambda's aliases it may split the invocations between two
// versions (AdditionalVersion gets AdditionalWeight of them), and it remembers
// its previous target for a rollback.
type Alias struct {
	FunctionID uuid.UUID `json:"function_id"`
	Function   string    `json:"function"`
	Name       string    `json:"name"`
	AliasTarget
	// Previous is the target before the last change (nil for a new alias):
	// a rollback makes it the target again.
	Previous    *AliasTarget `json:"previous,omitempty"`
	Description string       `json:"description"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

// AliasTarget is what an alias points at: one version, or two with a weight.
type AliasTarget struct {
	Version int `json:"version"`
	// AdditionalVersion, when not 0, runs a share AdditionalWeight (a fraction
	// strictly between 0 and 1, Lambda's AdditionalVersionWeights) of the
	// invocations; Version runs the rest.
	AdditionalVersion int     `json:"additional_version,omitempty"`
	AdditionalWeight  float64 `json:"additional_weight,omitempty"`
}

var aliasNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// ValidateAliasName checks an alias's name; field names it in the error
// ("alias", "name").
func ValidateAliasName(field, name string) error {
	if !aliasNamePattern.MatchString(name) {
		return Errorf(EINVALID, "%s: must match ^[a-z][a-z0-9-]{0,62}$ (got %q)", field, name)
	}
	return nil
}

// Validate checks the target's numbers (not that the versions exist).
func (t AliasTarget) Validate() error {
	switch {
	case t.Version < 1 || t.Version > MaxVersion:
		return Errorf(EINVALID, "version: must be between 1 and %d, not %d", MaxVersion, t.Version)
	case t.AdditionalVersion == 0 && t.AdditionalWeight != 0:
		return Errorf(EINVALID, "additional_weight: needs additional_version")
	case t.AdditionalVersion == 0:
		return nil
	case t.AdditionalVersion < 0 || t.AdditionalVersion > MaxVersion:
		return Errorf(EINVALID, "additional_version: must be between 1 and %d, not %d", MaxVersion, t.AdditionalVersion)
	case t.AdditionalVersion == t.Version:
		return Errorf(EINVALID, "additional_version: must differ from version (%d)", t.Version)
	case math.IsNaN(t.AdditionalWeight) || !(t.AdditionalWeight > 0 && t.AdditionalWeight < 1):
		return Errorf(EINVALID, "additional_weight: must be a fraction between 0 and 1 exclusive (0.1 sends a tenth of the invocations to additional_version), not %v", t.AdditionalWeight)
	}
	return nil
}

// Pick returns the version that an invocation drawing u (uniform in [0, 1))
// runs: AdditionalVersion when u < AdditionalWeight, else Version.
func (t AliasTarget) Pick(u float64) int {
	if t.AdditionalVersion != 0 && u < t.AdditionalWeight {
		return t.AdditionalVersion
	}
	return t.Version
}

// AliasDraw turns seed into a number uniform in [0, 1): the same seed draws
// the same number, so a repeated request (same Idempotency-Key), a retried
// chain step or a schedule firing picks the same version of a split alias.
func AliasDraw(seed string) float64 {
	sum := sha256.Sum256([]byte(seed))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}
