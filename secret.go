package ferry

import (
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Secret is a named secret as the API shows it: never its value.
type Secret struct {
	Name string `json:"name"`
	// OwnerKeyID is the API key that created it: besides admins, only that key
	// changes, deletes or first attaches it.
	OwnerKeyID *uuid.UUID `json:"owner_key_id,omitempty"`
	// KeyID names the encryption key that sealed the value (see rotation).
	KeyID     string    `json:"key_id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MaxSecretBytes bounds a secret's value.
const MaxSecretBytes = 16 << 10

// A secret's name is the environment variable it becomes.
var secretNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// ValidateSecretName checks a secret's name; field names it in the error.
func ValidateSecretName(field, name string) error {
	if !secretNamePattern.MatchString(name) {
		return Errorf(EINVALID, "%s: must be an environment variable name, ^[A-Za-z_][A-Za-z0-9_]{0,127}$ (got %q)", field, name)
	}
	return nil
}
