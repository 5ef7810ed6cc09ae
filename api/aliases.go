package api

import (
	"math/rand/v2"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
)

// aliasRequest is the body of PUT /v1/functions/{name}/aliases/{alias}.
type aliasRequest struct {
	ferry.AliasTarget
	Description string `json:"description"`
}

func (s *server) aliasParams(c echo.Context) (name, alias string, err error) {
	name, alias = c.Param("name"), c.Param("alias")
	if err := ferry.ValidateAliasName("alias", alias); err != nil {
		return "", "", err
	}
	return name, alias, nil
}

// setAlias creates or moves an alias: 201 when new, 200 when moved. Moving
// an alias changes what its callers run, as a deploy does: it needs write.
func (s *server) setAlias(c echo.Context) error {
	name, alias, err := s.aliasParams(c)
	if err != nil {
		return err
	}
	if err := s.require(c, name, ferry.PermWrite); err != nil {
		return err
	}
	var req aliasRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if len(req.Description) > maxDescription {
		return ferry.Errorf(ferry.EINVALID, "description: must be at most %d characters", maxDescription)
	}
	a, created, err := s.Store.SetAlias(c.Request().Context(), name, alias, req.AliasTarget, req.Description)
	if err != nil {
		return err
	}
	s.Logger.Info("alias set", "function", name, "alias", alias, "version", a.Version,
		"additional_version", a.AdditionalVersion, "additional_weight", a.AdditionalWeight, "request_id", requestIDOf(c))
	if created {
		c.Response().Header().Set(echo.HeaderLocation, "/v1/functions/"+name+"/aliases/"+alias)
		return c.JSON(http.StatusCreated, a)
	}
	return c.JSON(http.StatusOK, a)
}

func (s *server) getAlias(c echo.Context) error {
	name, alias, err := s.aliasParams(c)
	if err != nil {
		return err
	}
	if err := s.require(c, name, ferry.PermRead); err != nil {
		return err
	}
	a, err := s.Store.GetAlias(c.Request().Context(), name, alias)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

func (s *server) listAliases(c echo.Context) error {
	name := c.Param("name")
	if err := s.require(c, name, ferry.PermRead); err != nil {
		return err
	}
	as, err := s.Store.ListAliases(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, listResponse("aliases", as, ""))
}

func (s *server) deleteAlias(c echo.Context) error {
	name, alias, err := s.aliasParams(c)
	if err != nil {
		return err
	}
	if err := s.require(c, name, ferry.PermWrite); err != nil {
		return err
	}
	if err := s.Store.DeleteAlias(c.Request().Context(), name, alias); err != nil {
		return err
	}
	s.Logger.Info("alias deleted", "function", name, "alias", alias, "request_id", requestIDOf(c))
	return c.NoContent(http.StatusNoContent)
}

// rollbackAlias points the alias back at its previous target.
func (s *server) rollbackAlias(c echo.Context) error {
	name, alias, err := s.aliasParams(c)
	if err != nil {
		return err
	}
	if err := s.require(c, name, ferry.PermWrite); err != nil {
		return err
	}
	a, err := s.Store.RollbackAlias(c.Request().Context(), name, alias)
	if err != nil {
		return err
	}
	s.Logger.Info("alias rolled back", "function", name, "alias", alias, "version", a.Version,
		"additional_version", a.AdditionalVersion, "request_id", requestIDOf(c))
	return c.JSON(http.StatusOK, a)
}

// target is what an invoke asks for: a version number (0: the latest) or an
// alias, never both.
type target struct {
	version int
	alias   string
}

// targetParams reads ?version and ?alias.
func targetParams(c echo.Context) (target, error) {
	v, err := versionParam(c)
	if err != nil {
		return target{}, err
	}
	t := target{version: v, alias: c.QueryParam("alias")}
	if t.alias == "" {
		return t, nil
	}
	if v != 0 {
		return target{}, ferry.Errorf(ferry.EINVALID, "version, alias: ask for a version or an alias, not both")
	}
	return t, ferry.ValidateAliasName("alias", t.alias)
}

// resolve returns the version t names. A split alias draws the version here,
// before the invocation is recorded: from the Idempotency-Key when there is
// one (a repeat picks the same version), at random otherwise.
func (s *server) resolve(c echo.Context, name string, t target, idempotencyKey string) (ferry.Version, error) {
	ctx := c.Request().Context()
	if t.alias == "" {
		return s.Store.GetVersion(ctx, name, t.version)
	}
	u := rand.Float64()
	if idempotencyKey != "" {
		u = ferry.AliasDraw(name + "\x00" + t.alias + "\x00" + idempotencyKey)
	}
	v, _, err := s.Store.ResolveAlias(ctx, name, t.alias, u)
	return v, err
}
