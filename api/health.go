package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
)

// readyTimeout bounds each readiness check.
const readyTimeout = 3 * time.Second

func (s *server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz runs every readiness check at once: 200 when all pass, else 503, with
// {"checks": {"postgres": "ok", "temporal": "error: ..."}}.
func (s *server) readyz(c echo.Context) error {
	checks := make(map[string]string, len(s.Ready))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range s.Ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
			defer cancel()
			res := "ok"
			if err := check(ctx); err != nil {
				res = "error: " + readyMessage(err)
			}
			mu.Lock()
			checks[name] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	status := http.StatusOK
	for _, r := range checks {
		if r != "ok" {
			status = http.StatusServiceUnavailable
		}
	}
	return c.JSON(status, map[string]any{"checks": checks})
}

// readyMessage says what failed; readiness output is for operators and probes.
func readyMessage(err error) string {
	var fe *ferry.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within " + readyTimeout.String()
	case errors.As(err, &fe):
		return fe.Message
	}
	return err.Error()
}
