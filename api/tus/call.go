package tus

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acestash/acestash/api/pace"
	"github.com/acestash/acestash/store"
)

// call is what one request learns on its way: the account, and what the
// upload it touched is now. The response headers are written from it.
type call struct {
	account store.Account
	method  string
	public  string
	res     *http.ResponseController
	ended   atomic.Bool // the request's context ended: read no more
	body    *pace.Body  // the request's body; nil without one

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
	go every(done, 30*time.Second, func() bool {
		c.res.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		return true
	})
	defer close(done)
	return fn()
}

// every calls fn each period until done is closed or fn returns false.
func every(done <-chan struct{}, period time.Duration, fn func() bool) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
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
// response starts. When the request's context ends (the client is gone)
// or the node begins to stop, the body stops where it is, and what
// arrived is kept.
func (t *endpoint) begin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := &writer{ResponseWriter: w}
		c := &call{method: r.Method, public: t.cfg.PublicURL, res: http.NewResponseController(ww)}
		ww.c = c
		end := func() {
			c.ended.Store(true)
			if c.body != nil {
				c.body.Stop() // a read in progress returns
			} else {
				c.res.SetReadDeadline(time.Now())
			}
		}
		if !fromProxy(r.RemoteAddr) {
			// Only a proxy may say which host and scheme the client used;
			// tusd builds each new upload's Location from them.
			for _, h := range []string{"Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				r.Header.Del(h)
			}
		}
		if r.Body != nil && r.Body != http.NoBody {
			// tusd sets read deadlines of its own; the pace's win while a
			// read waits, and a body too slow ends with a 400.
			c.body = pace.New(r.Body, c.res, t.cfg.MinBodyRate, t.cfg.BodyWindow)
			r.Body = slowBody{c.body, r.Context(), t}
		}
		stop := context.AfterFunc(r.Context(), end)
		defer stop()
		if t.cfg.Stopping != nil {
			stopping := context.AfterFunc(t.cfg.Stopping, end)
			defer stopping()
		}
		next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
	})
}

// fromProxy reports whether a request comes from a loopback, private or
// link-local address, as a reverse proxy's do; X-Forwarded-For is trusted
// by the same rule.
func fromProxy(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast()
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

// body is a request body that ends where the request's context ended.
type body struct {
	r io.Reader
	c *call
}

func (b body) Read(p []byte) (int, error) {
	if b.c.ended.Load() {
		return 0, io.EOF
	}
	return b.r.Read(p)
}

// slowBody gives tusd a body too slow as a tus error it answers with, 400
// ERR_BODY_TOO_SLOW; the bytes that came are kept, as for a body cut off.
type slowBody struct {
	*pace.Body
	ctx context.Context
	t   *endpoint
}

func (b slowBody) Read(p []byte) (int, error) {
	n, err := b.Body.Read(p)
	if se, ok := errors.AsType[*pace.SlowError](err); ok {
		b.t.cfg.Log.WarnContext(b.ctx, "tus body too slow: request ended, bytes kept",
			"min_rate", b.t.cfg.MinBodyRate, "window", b.t.cfg.BodyWindow)
		err = errSlowBody{se}
	}
	return n, err
}
