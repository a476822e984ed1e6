package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// A dialect writes problems the way one family of clients reads them. Each
// route group speaks one; the error handler asks the route that ran, or
// that the request fell to, which it is.
type dialect func(c echo.Context, p *problem)

const dialectKey = "acestash.dialect"

// group returns a route group under prefix whose failures d writes, its
// routes behind mw. A request under prefix that names no route gets d's
// 404, or 405 when the path is a route for other methods. Middleware must
// come through here: Echo's Group.Use puts its own 404 in place of ours.
func (s *Server) group(e *echo.Echo, prefix string, d dialect, mw ...echo.MiddlewareFunc) *echo.Group {
	speak := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(dialectKey, d)
			return next(c)
		}
	}
	g := e.Group(prefix, append([]echo.MiddlewareFunc{speak}, mw...)...)
	g.RouteNotFound("", noRoute)
	g.RouteNotFound("/*", noRoute)
	return g
}

// noRoute answers a request that matched no route of its group.
func noRoute(c echo.Context) error {
	path := c.Request().URL.Path
	for _, r := range c.Echo().Routes() {
		if r.Path == path && r.Method != echo.RouteNotFound {
			return &problem{status: http.StatusMethodNotAllowed, msg: "method " + c.Request().Method + " is not allowed here", routing: true}
		}
	}
	return &problem{status: http.StatusNotFound, msg: "not found", routing: true}
}

// handleError writes a failure in the dialect of the request's route.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := asProblem(err)
	r := c.Request()
	// Headers a handler set for the body it meant to send do not describe
	// this one; a 416 keeps its Content-Range (bytes */size), as RFC 9110
	// asks.
	h := c.Response().Header()
	for _, k := range []string{echo.HeaderContentLength, "Content-Range", echo.HeaderContentDisposition, "ETag", echo.HeaderLastModified, "Accept-Ranges"} {
		if k != "Content-Range" || p.status != http.StatusRequestedRangeNotSatisfiable {
			h.Del(k)
		}
	}
	switch {
	case p.status >= 500:
		s.cfg.Log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", p.status, "err", err)
	case p.err != nil:
		s.cfg.Log.DebugContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.Path, "status", p.status, "err", err)
	}
	d, ok := c.Get(dialectKey).(dialect)
	if !ok {
		d = plain
	}
	d(c, p)
}

// mirrorAce writes the {"status","result"} envelope. A refused call is
// answered with HTTP 200, because the PHP and .NET clients read the body of
// a 200 only; storage failures (503, worth retrying), internal errors and
// calls that do not exist keep their status.
func mirrorAce(c echo.Context, p *problem) {
	code, msg := p.status, p.msg
	switch {
	case code == http.StatusNotFound && p.routing:
		msg = "unknown API call " + c.Request().URL.Path
	case code == http.StatusMethodNotAllowed:
		msg = "API calls use POST"
	case code < 500 && !p.routing:
		code = http.StatusOK
	}
	writeEnvelope(c, code, "error", msg)
}

// apiV1 writes the failures of /api/v1/ outside the Rocket.Chat routes: in
// Rocket.Chat's shape for a path Rocket.Chat's REST API would serve, so its
// clients can read it, and in MirrorAce's envelope otherwise.
func apiV1(c echo.Context, p *problem) {
	if rocketCall(c.Request().URL.Path) {
		rocket(c, p)
		return
	}
	mirrorAce(c, p)
}

// rocketUndotted are the calls of Rocket.Chat's REST API whose names have
// no dot; every other one does (rooms.upload, chat.postMessage, users.info),
// and no MirrorAce call does (file/info, upload).
var rocketUndotted = []string{"me", "info", "login", "logout", "directory", "spotlight", "statistics", "livechat", "banners", "licenses"}

// rocketCall reports whether path, under /api/v1/, names a call of
// Rocket.Chat's REST API.
func rocketCall(path string) bool {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return false
	}
	name, _, _ := strings.Cut(rest, "/")
	return strings.Contains(name, ".") || slices.Contains(rocketUndotted, name)
}

// rocket writes Rocket.Chat's error object.
func rocket(c echo.Context, p *problem) {
	msg := p.msg
	if p.status == http.StatusNotFound && p.routing {
		msg = "unknown API call " + c.Request().URL.Path + ": acestash serves Rocket.Chat's " +
			"rooms.upload/<room id>, rooms.media/<room id> and rooms.mediaConfirm/<room id>/<file id>"
	}
	body := map[string]any{"success": false, "error": msg}
	if p.rocket != "" {
		body["errorType"] = p.rocket
	}
	c.JSON(p.status, body)
}

// plain writes the message as a line of text: for Mirage, which shows the
// body of a failure to no one but the operator's logs, and for pages and
// downloads.
func plain(c echo.Context, p *problem) {
	if c.Request().Method == http.MethodHead {
		c.NoContent(p.status)
		return
	}
	c.String(p.status, p.msg+"\n")
}
