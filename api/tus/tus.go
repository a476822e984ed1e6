// Package tus speaks tus 1.0 (resumable uploads: Uppy, tus-js-client and
// every other tus client) at /files/. The protocol is tusd's handler; this
// package gives it a DataStore and a Locker over acestash's chunks and
// store, so a tus upload is written like any other upload (fanned out to
// its mirrors, shared by every node) and ends as a file record.
package tus

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"
	xslog "golang.org/x/exp/slog"

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
	Store  store.Store
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
	// LockTime is how long a request's lock on an upload holds unless it is
	// renewed; default 30 s. A node that dies holding one frees it then.
	LockTime time.Duration
	Clock    store.Clock
	Log      *slog.Logger
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
	if cfg.LockTime == 0 {
		cfg.LockTime = 30 * time.Second
	}
	locks := &locker{chunks: cfg.Chunks, clock: cfg.Clock, ttl: cfg.LockTime, log: cfg.Log, held: map[string]*lock{}}
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
	t := &endpoint{cfg: cfg, h: h}
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
	cfg Config
	h   *handler.UnroutedHandler
}

// route sends each method to its handler, as tusd's routed handler does,
// without downloads.
func (t *endpoint) route() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		root := strings.Trim(r.URL.Path, "/") == ""
		switch {
		case root && r.Method == http.MethodPost:
			t.h.PostFile(w, r)
		case root:
			refuse(w, r, handler.NewError("ERR_METHOD_NOT_ALLOWED", "create uploads with POST", http.StatusMethodNotAllowed), "POST")
		case r.Method == http.MethodHead:
			t.h.HeadFile(w, r)
		case r.Method == http.MethodPatch:
			t.h.PatchFile(w, r)
		case r.Method == http.MethodDelete:
			t.h.DelFile(w, r)
		default:
			refuse(w, r, handler.NewError("ERR_METHOD_NOT_ALLOWED",
				"an upload takes HEAD, PATCH and DELETE; its file is read at /m/<slug>", http.StatusMethodNotAllowed), "HEAD, PATCH, DELETE")
		}
	})
}

// refuse writes a tus error as tusd writes its own.
func refuse(w http.ResponseWriter, r *http.Request, e handler.Error, allow string) {
	for k, v := range e.HTTPResponse.Header {
		w.Header().Set(k, v)
	}
	if allow != "" {
		w.Header().Set("Allow", allow)
	}
	w.WriteHeader(e.HTTPResponse.StatusCode)
	if r.Method != http.MethodHead {
		w.Write([]byte(e.HTTPResponse.Body))
	}
}

// call is what one request learns on its way: the account, and what the
// upload it touched is now. The response headers are written from it.
type call struct {
	account store.Account
	public  string
	res     *http.ResponseController

	mu      sync.Mutex
	slug    string    // set once the upload is a published file
	expires time.Time // set while the upload is unfinished
}

type callKey struct{}

func callOf(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		c = &call{}
	}
	return c
}

// saw records what the request's upload is now.
func (c *call) saw(sess store.Session, idle time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slug, c.expires = "", time.Time{}
	switch {
	case sess.Done && !sess.Partial:
		c.slug = sess.Slug
	case !sess.Done:
		c.expires = sess.Updated.Add(idle)
	}
}

// keep runs fn, which may outlast the write deadline tusd set when the
// request began (publishing a large file, joining partial uploads), and
// moves the deadline on while it runs so the answer can still be sent.
func (c *call) keep(fn func() error) error {
	if c.res == nil {
		return fn()
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.res.SetWriteDeadline(time.Now().Add(2 * time.Minute))
			}
		}
	}()
	defer close(done)
	return fn()
}

// headers adds acestash's headers to a response.
func (c *call) headers(h http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slug != "" {
		h.Set(SlugHeader, c.slug)
		h.Set(URLHeader, c.public+"/m/"+c.slug)
	}
	if !c.expires.IsZero() {
		h.Set("Upload-Expires", c.expires.UTC().Format(http.TimeFormat))
	}
}

// begin gives the request its call and writes acestash's headers when the
// response starts.
func (t *endpoint) begin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := &writer{ResponseWriter: w}
		c := &call{public: t.cfg.PublicURL, res: http.NewResponseController(ww)}
		ww.c = c
		r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))
		next.ServeHTTP(ww, r)
	})
}

// writer adds a call's headers to the response.
type writer struct {
	http.ResponseWriter
	c     *call
	wrote bool
}

func (w *writer) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if code < 300 {
			w.c.headers(w.Header())
		}
		// Upload-Expires is acestash's; tusd does not list it.
		if ext := w.Header().Get("Tus-Extension"); ext != "" {
			w.Header().Set("Tus-Extension", ext+",expiration")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *writer) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets tusd set read deadlines on the connection.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// auth admits requests with Authorization: Bearer <api_key>:<api_token>.
func (t *endpoint) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", "Bearer")
			refuse(w, r, handler.NewError("ERR_UNAUTHORIZED", "send Authorization: Bearer <api_key>:<api_token>", http.StatusUnauthorized), "")
			return
		}
		a, err := t.cfg.Store.Account(r.Context(), key)
		if err == nil && !a.CheckToken(token) || isNotFound(err) {
			w.Header().Set("WWW-Authenticate", "Bearer")
			refuse(w, r, handler.NewError("ERR_UNAUTHORIZED", "api_key or api_token is wrong", http.StatusUnauthorized), "")
			return
		}
		if err != nil {
			t.cfg.Log.Error("tus: read account", "err", err)
			refuse(w, r, errUnavailable("cannot read the account; retry later"), "")
			return
		}
		callOf(r.Context()).account = a
		next.ServeHTTP(w, r)
	})
}

// bearer splits "Bearer <api_key>:<api_token>".
func bearer(h string) (key, token string, ok bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", "", false
	}
	key, token, ok = strings.Cut(strings.TrimSpace(cred), ":")
	return key, token, ok && key != "" && token != ""
}

// tusdLog passes tusd's warnings and errors to log as single lines; its
// per-request lines stay out.
func tusdLog(log *slog.Logger) *xslog.Logger {
	return xslog.New(xslog.NewTextHandler(lines{log}, &xslog.HandlerOptions{Level: xslog.LevelWarn}))
}

type lines struct{ log *slog.Logger }

func (l lines) Write(p []byte) (int, error) {
	l.log.Warn("tusd", "line", strings.TrimSpace(string(p)))
	return len(p), nil
}
