// Package api speaks acestash's HTTP dialects: the MirrorAce API v1, the
// download pages, Mirage's storage service and Rocket.Chat's file uploads.
// It translates requests into calls on chunks and store and nothing more.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/acestash/acestash/api/auth"
	"github.com/acestash/acestash/api/remote"
	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// Config is what the handlers need.
type Config struct {
	Store   store.Store
	Chunks  *chunks.Service
	Mirrors *mirrors.Set
	// PublicURL is how clients reach this server, without a trailing slash.
	PublicURL string
	Clock     store.Clock
	Log       *slog.Logger
	// SpoolDir holds a file part that arrives before the fields it needs.
	SpoolDir string
	// Raw configures Mirage's storage service.
	Raw Raw
	// UnconfirmedTTL is how long a file posted with Rocket.Chat's
	// rooms.media waits for rooms.mediaConfirm; 0 means 24 hours.
	UnconfirmedTTL time.Duration
	// Remote fetches the URLs of upload/remote; nil turns the call off.
	Remote *remote.Fetcher
	// RemoteSlots is how many remote fetches this node runs at once.
	RemoteSlots int
	// Metrics is told about every request; nil: no one is.
	Metrics Observer
	// MetricsHandler serves GET /metrics; nil leaves the route out.
	// MetricsToken, when set, is the bearer token it demands.
	MetricsHandler http.Handler
	MetricsToken   string
	// Ready says why the node cannot take uploads now, or nil; GET /readyz
	// asks it.
	Ready func(ctx context.Context) error
	// AdminToken turns on the admin API under /api/admin/ and is the
	// bearer token it demands; empty leaves it off.
	AdminToken string
	// MinBodyRate, in bytes per second, and BodyWindow: a request body
	// must bring MinBodyRate × BodyWindow bytes in every BodyWindow the
	// server waits for it, or the request is cut. 0 turns it off.
	MinBodyRate int64
	BodyWindow  time.Duration
	// Tus answers tus requests under /files/ (see package tus); nil turns
	// the endpoint off.
	Tus http.Handler
	// Health says why a mirror failed its last check, or nil; nil Health
	// calls every mirror healthy.
	Health func(id string) error
	// RedirectExpiry is how long the URL a download is redirected to
	// stays valid; RedirectOrigins are the origins of the mirrors
	// downloads may be redirected to, which the file page's previews may
	// load from.
	RedirectExpiry  time.Duration
	RedirectOrigins []string
	// JobsChanged is called when the admin API has started, paused,
	// resumed or cancelled a mirror job; nil: no one is told.
	JobsChanged func()
}

// Raw configures Mirage's storage service: POST /upload, GET /uploads/<id>.
type Raw struct {
	MaxSize int64 // largest body accepted, in bytes
	// RequireKey demands credentials on POST /upload; without it uploads
	// belong to the Anonymous account.
	RequireKey bool
	Anonymous  string        // api_key of the account owning keyless uploads
	TTL        time.Duration // how long a file is kept when neither the upload nor its account says; 0 keeps it forever
}

// Server holds the handlers of every dialect.
type Server struct {
	cfg     Config
	slots   chan struct{} // one token per remote fetch in progress
	guesses guesses       // wrong file passwords
	auth    *auth.Authenticator
	fileCSP string // the file page's policy: previews may come from redirect mirrors
}

// New returns the HTTP handler of acestash.
func New(cfg Config) http.Handler {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.UnconfirmedTTL <= 0 {
		cfg.UnconfirmedTTL = 24 * time.Hour
	}
	if cfg.BodyWindow <= 0 {
		cfg.BodyWindow = 30 * time.Second
	}
	s := &Server{cfg: cfg, slots: make(chan struct{}, max(cfg.RemoteSlots, 1)),
		guesses: guesses{store: cfg.Store, clock: cfg.Clock}, auth: auth.New(cfg.Store, cfg.Clock),
		fileCSP: filePageCSP(cfg.RedirectOrigins)}
	e := s.echo()
	s.web(e)
	s.mirrorAce(s.group(e, "/api/v1", apiV1))
	s.rocketChat(e)
	s.downloads(s.group(e, "/m", plain))
	s.mirage(e)
	s.sharex(e)
	s.ops(e)
	s.admin(s.group(e, "/api/admin", jsonError, s.adminAuth))
	if cfg.Tus != nil {
		// tusd's handler writes its own errors, CORS headers and all.
		h := echo.WrapHandler(cfg.Tus)
		e.Any("/files", h)
		e.Any("/files/*", h)
	}
	return e
}

// echo returns an Echo with the error handling every route shares.
func (s *Server) echo() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// A client's address is the connection's, or what a proxy on a
	// loopback or private address says it forwarded for.
	e.IPExtractor = echo.ExtractIPFromXFFHeader()
	e.Use(s.observe)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: s.logPanic}))
	e.Use(s.slowBodies)
	return e
}

func (s *Server) logPanic(c echo.Context, err error, stack []byte) error {
	s.cfg.Log.ErrorContext(c.Request().Context(), "panic", "path", c.Request().URL.Path, "err", err, "stack", string(stack))
	return err
}
