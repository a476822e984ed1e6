// Package tus speaks tus 1.0 (resumable uploads: Uppy, tus-js-client and
// every other tus client) at /files/. The protocol is tusd's handler; this
// package gives it a DataStore and a Locker over acestash's chunks and
// store, so a tus upload is written like any other upload (fanned out to
// its mirrors, shared by every node) and ends as a file record.
package tus

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"
	xslog "golang.org/x/exp/slog"

	"github.com/acestash/acestash/api/auth"
	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// Prefix is where the tus endpoint is mounted.
const Prefix = "/files/"

// Response headers acestash adds to tus's.
const (
	// SlugHeader carries the slug of the file a finished upload made.
	SlugHeader = "Acestash-Slug"
	// URLHeader carries the address of the file's page, <public_url>/m/<slug>.
	URLHeader = "Acestash-Url"
)

// Config is what the tus endpoint needs.
type Config struct {
	Store  auth.Store // authenticating reads accounts and counters
	Chunks *chunks.Service
	// PublicURL is how clients reach this server, without a trailing slash.
	PublicURL string
	// Idle is how long an unfinished upload is kept without a write; it is
	// told to clients as Upload-Expires.
	Idle time.Duration
	// Origins are the browser origins allowed to upload (CORS); "*" allows
	// any. Empty allows none.
	Origins []string
	// MaxSize is the largest file the server accepts, told as Tus-Max-Size.
	MaxSize int64
	// Stopping, when set, ends when the node begins to stop: PATCHes end
	// then, keeping what they received, rather than at the end of the
	// node's grace period (clients resume them from the kept offset).
	Stopping context.Context
	// MinBodyRate, in bytes per second, and BodyWindow: while the server
	// waits for a request body, it must bring MinBodyRate × BodyWindow
	// bytes in every BodyWindow, or the request is ended (keeping what
	// came). Zero or negative MinBodyRate: no minimum.
	MinBodyRate int64
	BodyWindow  time.Duration
	Clock       store.Clock
	Log         *slog.Logger
}

// New returns the handler of the tus endpoint, for requests whose path
// starts with Prefix.
func New(cfg Config) (http.Handler, error) {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MinBodyRate > 0 && cfg.BodyWindow <= 0 {
		return nil, fmt.Errorf("tus: a minimum body rate needs a window, not %v", cfg.BodyWindow)
	}
	// A request's lock on an upload is the upload's lease in chunks
	// (lease_time): a node that dies holding one frees it then.
	locks := &locker{chunks: cfg.Chunks, log: cfg.Log, held: map[string]*lock{}}
	ds := &datastore{cfg: cfg, locks: locks}
	composer := handler.NewStoreComposer()
	composer.UseCore(ds)
	composer.UseTerminater(ds)
	composer.UseLengthDeferrer(ds)
	composer.UseConcater(ds)
	composer.UseLocker(locks)

	cors := handler.DefaultCorsConfig
	cors.AllowOrigin = originPattern(cfg.Origins)
	cors.ExposeHeaders += ", Upload-Expires, " + SlugHeader + ", " + URLHeader
	h, err := handler.NewUnroutedHandler(handler.Config{
		StoreComposer:           composer,
		BasePath:                Prefix,
		MaxSize:                 cfg.MaxSize,
		DisableDownload:         true, // files are read at /m/<slug>
		Cors:                    &cors,
		RespectForwardedHeaders: true,
		// A request cut off still stores what it received; this bounds
		// how long that may take.
		GracefulRequestCompletionTimeout: time.Minute,
		Logger:                           tusdLog(cfg.Log),
	})
	if err != nil {
		return nil, fmt.Errorf("tus: %w", err)
	}
	t := &endpoint{cfg: cfg, h: h, creds: auth.New(cfg.Store, cfg.Clock)}
	return http.StripPrefix(strings.TrimSuffix(Prefix, "/"), t.begin(h.Middleware(t.auth(t.route())))), nil
}

// originPattern matches the allowed origins exactly.
func originPattern(origins []string) *regexp.Regexp {
	var alts []string
	for _, o := range origins {
		if o == "*" {
			return regexp.MustCompile(`.*`)
		}
		alts = append(alts, regexp.QuoteMeta(strings.TrimRight(o, "/")))
	}
	if len(alts) == 0 {
		return regexp.MustCompile(`^\b$`) // matches no origin
	}
	return regexp.MustCompile(`^(` + strings.Join(alts, "|") + `)$`)
}

// endpoint routes tus requests to tusd's handlers.
type endpoint struct {
	cfg   Config
	h     *handler.UnroutedHandler
	creds *auth.Authenticator
}

// tusdLog passes tusd's warnings and errors to log as single lines, with
// the context of the request that caused them (its request id); its
// per-request lines stay out.
func tusdLog(log *slog.Logger) *xslog.Logger {
	return xslog.New(tusdHandler{log: log})
}

type tusdHandler struct {
	log   *slog.Logger
	attrs []xslog.Attr
}

func (h tusdHandler) Enabled(_ context.Context, l xslog.Level) bool { return l >= xslog.LevelWarn }

func (h tusdHandler) Handle(ctx context.Context, r xslog.Record) error {
	var line bytes.Buffer
	if err := xslog.NewTextHandler(&line, nil).WithAttrs(h.attrs).Handle(ctx, r); err != nil {
		return err
	}
	h.log.WarnContext(ctx, "tusd", "line", strings.TrimSpace(line.String()))
	return nil
}

func (h tusdHandler) WithAttrs(as []xslog.Attr) xslog.Handler {
	return tusdHandler{log: h.log, attrs: append(slices.Clip(h.attrs), as...)}
}

// WithGroup keeps the attributes flat: tusd names no groups.
func (h tusdHandler) WithGroup(string) xslog.Handler { return h }
