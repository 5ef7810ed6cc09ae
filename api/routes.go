package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
)

//go:embed openapi.json
var openAPI []byte

// routes lists every route of the API. Every /v1 route needs an API key
// (authenticate); per-function permissions are checked in the handlers, where
// the function is known. openapi.json documents the same routes (tested).
func (s *server) routes(e *echo.Echo) {
	auth := s.authenticate
	body := s.limitBody(s.MaxBodyBytes)
	// A JSON deploy carries the bundle in base64: a third larger, plus fields.
	deployBody := s.limitBody(s.MaxCodeBytes/3*4 + 1<<20)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/v1/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPI)
	})

	e.POST("/v1/functions", s.deploy, auth, deployBody)
	e.GET("/v1/functions", s.listFunctions, auth)
	e.GET("/v1/functions/:name", s.getFunction, auth)
	e.DELETE("/v1/functions/:name", s.deleteFunction, auth)
	e.GET("/v1/functions/:name/versions", s.listVersions, auth)
	e.POST("/v1/functions/:name/invoke", s.invoke, auth, body)
	e.GET("/v1/functions/:name/aliases", s.listAliases, auth)
	e.GET("/v1/functions/:name/aliases/:alias", s.getAlias, auth)
	e.PUT("/v1/functions/:name/aliases/:alias", s.setAlias, auth, body)
	e.DELETE("/v1/functions/:name/aliases/:alias", s.deleteAlias, auth)
	e.POST("/v1/functions/:name/aliases/:alias/rollback", s.rollbackAlias, auth, body)
	e.POST("/v1/functions/:name/permissions", s.grantPermission, auth, body)
	e.DELETE("/v1/functions/:name/permissions", s.revokePermission, auth, body)

	e.GET("/v1/invocations", s.listInvocations, auth)
	e.GET("/v1/invocations/:id", s.getInvocation, auth)
	e.GET("/v1/invocations/:id/logs", s.invocationLogs, auth)
	e.GET("/v1/invocations/:id/steps", s.invocationSteps, auth)
	// The token in the URL is the credential of a callback: no API key.
	e.POST("/v1/callbacks/:token", s.completeCallback, s.limitBody(ferry.MaxCallbackBody))
	e.POST("/v1/invocations/:id/cancel", s.cancelInvocation, auth, body)
	e.POST("/v1/invocations/:id/retry", s.retryInvocation, auth, body)

	s.chainRoutes(e, auth, body)
	s.scheduleRoutes(e, auth, body)

	e.GET("/v1/secrets", s.listSecrets, auth)
	e.GET("/v1/secrets/:name", s.getSecret, auth)
	e.PUT("/v1/secrets/:name", s.putSecret, auth, body)
	e.DELETE("/v1/secrets/:name", s.deleteSecret, auth)

	e.POST("/v1/keys", s.createKey, auth, s.requireAdmin, body)
	e.GET("/v1/keys", s.listKeys, auth, s.requireAdmin)
	e.DELETE("/v1/keys/:id", s.revokeKey, auth, s.requireAdmin)
}
