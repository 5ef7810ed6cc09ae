package secrets

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/postgres"
)

// Store is what the vault needs from PostgreSQL (*postgres.DB).
type Store interface {
	PutSecret(ctx context.Context, s postgres.SealedSecret, owner uuid.UUID) (ferry.Secret, bool, error)
	SealedSecrets(ctx context.Context, names []string) ([]postgres.SealedSecret, error)
	SecretKeyIDs(ctx context.Context) (map[string]int, error)
	ResealSecret(ctx context.Context, from string, s postgres.SealedSecret) (bool, error)
	ListSecrets(ctx context.Context) ([]ferry.Secret, error)
}

var _ Store = (*postgres.DB)(nil)

// Vault seals values on their way into the store and opens them on their way
// to a function.
type Vault struct {
	Store Store
	Keys  *Keyring
}

// Put seals value and stores it under name (see postgres.PutSecret).
func (v *Vault) Put(ctx context.Context, name string, value []byte, owner uuid.UUID) (ferry.Secret, bool, error) {
	keyID, sealed, err := v.Keys.Seal(name, value)
	if err != nil {
		return ferry.Secret{}, false, err
	}
	return v.Store.PutSecret(ctx, postgres.SealedSecret{Name: name, KeyID: keyID, Sealed: sealed}, owner)
}

// Resolve returns the values of the named secrets. A missing secret is
// ENOTFOUND naming it.
func (v *Vault) Resolve(ctx context.Context, names []string) (map[string]string, error) {
	sealed, err := v.Store.SealedSecrets(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(sealed))
	for _, s := range sealed {
		b, err := v.Keys.Open(s.Name, s.KeyID, s.Sealed)
		if err != nil {
			return nil, err
		}
		out[s.Name] = string(b)
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, ferry.Errorf(ferry.ENOTFOUND, "secret %q not found (deleted after the version was deployed?)", n)
		}
	}
	return out, nil
}

// Check is the start-up check: every stored secret must be sealed with a key
// this server holds. Its error says which key is missing or wrong.
func (v *Vault) Check(ctx context.Context) error {
	ids, err := v.Store.SecretKeyIDs(ctx)
	if err != nil {
		return err
	}
	var unknown []string
	for id, n := range ids {
		if !v.Keys.Knows(id) {
			unknown = append(unknown, fmt.Sprintf("%d sealed with key %s", n, id))
		}
	}
	slices.Sort(unknown)
	switch {
	case len(unknown) == 0:
		return nil
	case !v.Keys.Configured():
		return ferry.Errorf(ferry.EINVALID, "FERRY_SECRETS_KEY is not set, but the database holds secrets (%s): set FERRY_SECRETS_KEY (or FERRY_SECRETS_KEY_FILE) to the key they were stored with",
			strings.Join(unknown, ", "))
	default:
		return ferry.Errorf(ferry.EINVALID, "FERRY_SECRETS_KEY (key %s) is not the key the stored secrets were sealed with (%s): set the right key, or list the old one in FERRY_SECRETS_OLD_KEYS while rotating",
			v.Keys.CurrentID(), strings.Join(unknown, ", "))
	}
}

// Rotate re-seals with the current key every secret sealed with an older one
// and returns how many it re-sealed. After it, the old keys may be dropped.
func (v *Vault) Rotate(ctx context.Context) (int, error) {
	if !v.Keys.Configured() {
		return 0, nil
	}
	ids, err := v.Store.SecretKeyIDs(ctx)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 || len(ids) == 1 && ids[v.Keys.CurrentID()] > 0 {
		return 0, nil
	}
	list, err := v.Store.ListSecrets(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list {
		if s.KeyID == v.Keys.CurrentID() {
			continue
		}
		sealed, err := v.Store.SealedSecrets(ctx, []string{s.Name})
		if err != nil {
			return n, err
		}
		if len(sealed) == 0 {
			continue // deleted meanwhile
		}
		value, err := v.Keys.Open(s.Name, sealed[0].KeyID, sealed[0].Sealed)
		if err != nil {
			return n, err
		}
		keyID, resealed, err := v.Keys.Seal(s.Name, value)
		if err != nil {
			return n, err
		}
		ok, err := v.Store.ResealSecret(ctx, sealed[0].KeyID, postgres.SealedSecret{Name: s.Name, KeyID: keyID, Sealed: resealed})
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}
