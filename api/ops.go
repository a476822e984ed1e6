package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/api/auth"
)

// The operator's probes and metrics: GET /healthz answers while the process
// runs, GET /readyz while it can take uploads, GET /metrics serves the
// metrics, behind a bearer token when one is configured.

func (s *Server) ops(e *echo.Echo) {
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.cfg.MetricsHandler != nil {
		e.GET("/metrics", s.metrics)
	}
}

func (s *Server) healthz(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.String(http.StatusOK, "ok\n")
}

// readyz answers 200 when the store answers and enough mirrors are healthy
// for the write quorum, else 503 with the reason.
func (s *Server) readyz(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			return c.String(http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
		}
	}
	return c.String(http.StatusOK, "ready\n")
}

func (s *Server) metrics(c echo.Context) error {
	if s.cfg.MetricsToken != "" && !bearerIs(c.Request(), s.cfg.MetricsToken) {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
		return c.String(http.StatusUnauthorized, "metrics need Authorization: Bearer <metrics_token>\n")
	}
	s.cfg.MetricsHandler.ServeHTTP(c.Response(), c.Request())
	return nil
}

// bearerIs reports, in constant time, whether the request carries
// Authorization: Bearer token.
func bearerIs(r *http.Request, token string) bool {
	got, ok := auth.Bearer(r)
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
