package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

const (
	headerRequestID = "X-Request-Id"
	ctxRequestID    = "ferry.request_id"
	ctxBodyLimit    = "ferry.body_limit"
)

// requestID takes the caller's X-Request-Id when it is short and printable,
// or makes one, and echoes it in the response.
func (s *server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(headerRequestID)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(headerRequestID, id)
		return next(c)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r <= ' ' || r > '~' {
			return false
		}
	}
	return true
}

func requestIDOf(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// accessLog logs one structured line per request and observes its latency.
func (s *server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			// Handle it here so the logged status is the one sent.
			c.Error(err)
		}
		d := time.Since(start)
		req, res := c.Request(), c.Response()
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.Metrics.ObserveHTTP(req.Method, route, res.Status, d)
		attrs := []any{
			"method", req.Method, "path", req.URL.Path, "route", route, "status", res.Status,
			"duration_ms", float64(d.Microseconds()) / 1000, "bytes", res.Size,
			"request_id", requestIDOf(c), "remote", c.RealIP(),
		}
		if p := principalOf(c); p != nil {
			attrs = append(attrs, "key_prefix", p.Key.Prefix)
		}
		if route == "/healthz" || route == "/readyz" {
			s.Logger.Debug("http request", attrs...)
		} else {
			s.Logger.Info("http request", attrs...)
		}
		return nil
	}
}

// limitBody bounds the request body: a declared length over n is refused at
// once, a longer body fails its read with *http.MaxBytesError (413).
func (s *server) limitBody(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(ctxBodyLimit, n)
			req := c.Request()
			if req.ContentLength > n {
				return &http.MaxBytesError{Limit: n}
			}
			req.Body = http.MaxBytesReader(c.Response(), req.Body, n)
			return next(c)
		}
	}
}

func (s *server) bodyLimitOf(c echo.Context) int64 {
	if n, ok := c.Get(ctxBodyLimit).(int64); ok {
		return n
	}
	return s.MaxBodyBytes
}

// byteSize formats n for messages: "6 MiB", "300 KiB", "12 bytes".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
