package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/bundle"
)

// Vault seals secret values (*secrets.Vault); nil: secrets are unavailable.
type Vault interface {
	Put(ctx context.Context, name string, value []byte, owner uuid.UUID) (ferry.Secret, bool, error)
}

// Who may do what with secrets (docs/API.md, "Secrets"): admin and developer
// keys create secrets and read their names; changing, deleting and first
// attaching a secret to a function take an admin key or the key that created
// it. Invokers see nothing of secrets. No route ever answers a value.

func requireSecretsRole(c echo.Context, what string) error {
	p := principalOf(c)
	if p.Key.Role != ferry.RoleAdmin && p.Key.Role != ferry.RoleDeveloper {
		return forbidden(p, "%s needs a developer or admin key", what)
	}
	return nil
}

// ownsSecret reports whether the caller may change, delete or attach s.
func ownsSecret(c echo.Context, s ferry.Secret) bool {
	p := principalOf(c)
	return p.Key.Role == ferry.RoleAdmin || s.OwnerKeyID != nil && *s.OwnerKeyID == p.Key.ID
}

type secretRequest struct {
	Value *string `json:"value"`
}

// putSecret creates (201) or changes (200) a secret. A change reaches the
// invocations that start after it, without a deploy.
func (s *server) putSecret(c echo.Context) error {
	name := c.Param("name")
	if err := ferry.ValidateSecretName("name", name); err != nil {
		return err
	}
	if err := requireSecretsRole(c, "setting secrets"); err != nil {
		return err
	}
	var req secretRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	switch {
	case req.Value == nil:
		return ferry.Errorf(ferry.EINVALID, "value: is required")
	case len(*req.Value) > ferry.MaxSecretBytes:
		return ferry.Errorf(ferry.EINVALID, "value: longer than the limit of %s", byteSize(ferry.MaxSecretBytes))
	}
	if s.Vault == nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "secrets are unavailable: the server has no FERRY_SECRETS_KEY")
	}
	ctx := c.Request().Context()
	cur, err := s.Store.GetSecret(ctx, name)
	switch {
	case err == nil && !ownsSecret(c, cur):
		return forbidden(principalOf(c), "secret %q belongs to another key: only it or an admin key may change it", name)
	case err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND:
		return err
	}
	sec, created, err := s.Vault.Put(ctx, name, []byte(*req.Value), principalOf(c).Key.ID)
	if err != nil {
		return err
	}
	s.Logger.Info("secret set", "secret", name, "created", created, "key_id", sec.KeyID, "request_id", requestIDOf(c))
	if created {
		c.Response().Header().Set(echo.HeaderLocation, "/v1/secrets/"+name)
		return c.JSON(http.StatusCreated, sec)
	}
	return c.JSON(http.StatusOK, sec)
}

func (s *server) getSecret(c echo.Context) error {
	if err := requireSecretsRole(c, "reading secrets' names"); err != nil {
		return err
	}
	sec, err := s.Store.GetSecret(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sec)
}

func (s *server) listSecrets(c echo.Context) error {
	if err := requireSecretsRole(c, "reading secrets' names"); err != nil {
		return err
	}
	ss, err := s.Store.ListSecrets(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, listResponse("secrets", ss, ""))
}

func (s *server) deleteSecret(c echo.Context) error {
	name := c.Param("name")
	if err := requireSecretsRole(c, "deleting secrets"); err != nil {
		return err
	}
	ctx := c.Request().Context()
	sec, err := s.Store.GetSecret(ctx, name)
	if err != nil {
		return err
	}
	if !ownsSecret(c, sec) {
		return forbidden(principalOf(c), "secret %q belongs to another key: only it or an admin key may delete it", name)
	}
	if err := s.Store.DeleteSecret(ctx, name); err != nil {
		return err
	}
	s.Logger.Info("secret deleted", "secret", name, "request_id", requestIDOf(c))
	return c.NoContent(http.StatusNoContent)
}

// checkSecrets checks the secrets a deploy names: valid, once each, not also
// an env name, existing; one the function's latest version (prev, nil for a
// new function) does not read yet is attached only by its owner or an admin.
func (s *server) checkSecrets(c echo.Context, v ferry.Version, prev *ferry.Version) error {
	seen := map[string]bool{}
	for i, name := range v.Secrets {
		field := "secrets[" + strconv.Itoa(i) + "]"
		if err := ferry.ValidateSecretName(field, name); err != nil {
			return err
		}
		switch {
		case seen[name]:
			return ferry.Errorf(ferry.EINVALID, "%s: %s is named twice", field, name)
		case bundle.ReservedEnv(name):
			return ferry.Errorf(ferry.EINVALID, "%s: %s is a reserved environment variable name", field, name)
		}
		if _, ok := v.Env[name]; ok {
			return ferry.Errorf(ferry.EINVALID, "%s: %s is also set in env; a secret becomes the variable of its name", field, name)
		}
		seen[name] = true
		sec, err := s.Store.GetSecret(c.Request().Context(), name)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return ferry.Errorf(ferry.EINVALID, "%s: secret %q not found (create it with PUT /v1/secrets/%s)", field, name, name)
		}
		if err != nil {
			return err
		}
		if (prev == nil || !slices.Contains(prev.Secrets, name)) && !ownsSecret(c, sec) {
			return forbidden(principalOf(c), "attaching secret %q to a function needs the key that created it or an admin key", name)
		}
	}
	return nil
}
