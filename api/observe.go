package api

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/api/metrics"
	"github.com/acestash/acestash/api/reqid"
)

// Every request gets an id (the client's X-Request-Id when it is sane, else
// a new one), carried in its context so that every log line it causes names
// it, and sent back in X-Request-Id. When it ends, one log line and the
// metrics record what it did.

// observe is the outermost middleware: it names the request, runs it and
// records it. A request whose client went away (see gone.go) gets no
// answer and is logged and counted as such, not as a failure.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		id := r.Header.Get(echo.HeaderXRequestID)
		if !reqid.Valid(id) {
			id = reqid.New()
		}
		ctx, body, done := detach(r)
		defer done()
		ctx = reqid.With(ctx, id)
		r = r.WithContext(ctx)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = body
		}
		c.SetRequest(r)
		out := &countingWriter{ResponseWriter: c.Response().Writer, cancel: body.cancel}
		c.Response().Writer = out
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		start := time.Now()
		kind := routeKind(c.Path(), r.Method)
		s.observer().Begin(kind)
		err := next(c)
		away := gone(ctx)
		switch {
		case away && !c.Response().Committed:
			c.Response().Status = statusGone // nothing is sent: no one reads it
		case err != nil:
			c.Error(err)
		}
		took := time.Since(start)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
			slog.Int("status", status), slog.Int64("bytes_in", body.n.Load()), slog.Int64("bytes_out", out.n),
			slog.Duration("duration", took), slog.String("remote", r.RemoteAddr)}
		if away {
			if err != nil {
				attrs = append(attrs, slog.String("err", err.Error()))
			}
			s.cfg.Log.LogAttrs(ctx, slog.LevelInfo, "client went away", attrs...)
		}
		s.cfg.Log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
		s.observer().End(metrics.Request{
			Dialect: dialectOf(route), Route: route, Kind: kind, Method: methodLabel(r.Method), Status: status,
			In: body.n.Load(), Out: out.n, Took: took, Gone: away,
		})
		return nil
	}
}

// statusGone is the status logged and counted for a request whose client
// went away before its answer, as nginx logs it; it is never sent.
const statusGone = 499

// Observer is told about requests: Begin when one starts, with its kind,
// End when it ends; and about each remote fetch's result: ok, refused or
// failed.
type Observer interface {
	Begin(kind string)
	End(r metrics.Request)
	Fetched(result string)
}

// methodLabel is the method, or "other" for one HTTP does not define, so
// that clients cannot grow the metrics' labels.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// dialectOf names the dialect of a route pattern.
func dialectOf(route string) string {
	switch {
	case rocketCall(route), strings.HasPrefix(route, "/file-upload/"):
		return "rocketchat"
	case strings.HasPrefix(route, "/api/v1/"):
		return "mirrorace"
	case strings.HasPrefix(route, "/api/admin/"):
		return "admin"
	case strings.HasPrefix(route, "/m/"):
		return "pages"
	case route == "/upload" || strings.HasPrefix(route, "/uploads/"):
		return "mirage"
	case isTusRoute(route):
		return "tus"
	case route == "/" || route == "/favicon.ico" || strings.HasPrefix(route, "/web/") || strings.HasPrefix(route, "/assets/"):
		return "web"
	case route == "/healthz" || route == "/readyz" || route == "/metrics":
		return "ops"
	}
	return "none"
}

// isTusRoute reports whether a route pattern is the tus endpoint's.
func isTusRoute(route string) bool {
	return route == "/files" || strings.HasPrefix(route, "/files/")
}

// routeKind says whether a request to a route pattern uploads or
// downloads a file.
func routeKind(route, method string) string {
	if isTusRoute(route) {
		if method == http.MethodPatch || method == http.MethodPost {
			return "upload" // tus: a PATCH, or a creation that may carry bytes
		}
		return ""
	}
	switch route {
	case "/api/v1/upload", "/api/v1/upload/remote", "/upload", "/api/v1/rooms.upload/:rid", "/api/v1/rooms.media/:rid":
		return "upload"
	case "/m/:slug/download", "/uploads/:id", "/file-upload/:id/:name":
		return "download"
	}
	return ""
}

// observer returns the configured Observer, or one that ignores all.
func (s *Server) observer() Observer {
	if s.cfg.Metrics == nil {
		return nopObserver{}
	}
	return s.cfg.Metrics
}

type nopObserver struct{}

func (nopObserver) Begin(string)        {}
func (nopObserver) End(metrics.Request) {}
func (nopObserver) Fetched(string)      {}
