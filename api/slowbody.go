package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/api/pace"
)

// Slow bodies: a client that sends its body slower than MinBodyRate would
// hold a connection, and for an upload its lease, as long as it liked.
// Package pace cuts it (see there); the tus endpoint holds its bodies to
// the same pace itself, as it also needs to stop them.

// isTus reports whether the request is for the tus endpoint.
func isTus(c echo.Context) bool {
	return isTusRoute(c.Path())
}

func (s *Server) slowBodies(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.cfg.MinBodyRate <= 0 || r.Body == nil || r.Body == http.NoBody || isTus(c) {
			return next(c)
		}
		r.Body = pace.New(r.Body, http.NewResponseController(c.Response()), s.cfg.MinBodyRate, s.cfg.BodyWindow)
		return next(c)
	}
}
