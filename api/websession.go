package api

import (
	"context"
	"crypto/hmac"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/api/auth"
	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// Browser sessions (README, "The web page"; the cookie itself is package
// auth's). The page's scripts never see the api_token: the
// MirrorAce calls accept the cookie together with the session's CSRF token
// in an X-CSRF-Token header instead of api_key and api_token.

const (
	sessionLife = 12 * time.Hour
	csrfHeader  = "X-CSRF-Token"
)

// noSession reports whether err says a request carries no live session
// (none, or one that ended), rather than that it could not be checked.
func noSession(err error) bool {
	p, ok := auth.As(err)
	return ok && p.Kind != auth.Unavailable
}

type sessionAccountKey struct{}

// withSession is middleware for the MirrorAce routes: a request with an
// X-CSRF-Token header must carry a live session cookie that the token
// belongs to, and when its form has no api_key and api_token it is made on
// behalf of the session's account (see authenticate). A cookie without the
// header counts for nothing.
func (s *Server) withSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		tok := r.Header.Get(csrfHeader)
		if tok == "" {
			return next(c)
		}
		a, cookie, err := s.auth.Session(r)
		if noSession(err) {
			return badRequest("the session has ended; sign in again")
		}
		if err != nil {
			return authProblem(err, nil, nil)
		}
		if !hmac.Equal([]byte(tok), []byte(auth.CSRF(a, cookie))) {
			return badRequest("the session's CSRF token does not match; reload the page")
		}
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), sessionAccountKey{}, a)))
		return next(c)
	}
}

// sessionAccount returns the account a request's session speaks for.
func sessionAccount(ctx context.Context) (store.Account, bool) {
	a, ok := ctx.Value(sessionAccountKey{}).(store.Account)
	return a, ok
}

// hasCredentials reports whether a request's fields, or its session, say
// who it is from.
func hasCredentials(ctx context.Context, v url.Values) bool {
	if v.Get("api_key") != "" && v.Get("api_token") != "" {
		return true
	}
	_, ok := sessionAccount(ctx)
	return ok
}

// sameOrigin reports whether a browser request comes from this server's own
// pages, so that another site cannot sign a visitor in or out.
func (s *Server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser's cross-site request: those carry Origin
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return origin == scheme+"://"+r.Host || origin == originOf(s.cfg.PublicURL)
}

func originOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Scheme + "://" + p.Host
}

// sessionInfo is what the page learns about its session: the account, the
// CSRF token, and the mirrors with the account's choices and limits.
func (s *Server) sessionInfo(a store.Account, cookie string) map[string]any {
	maxMirrors := a.MaxMirrors
	if maxMirrors <= 0 {
		maxMirrors = len(s.cfg.Mirrors.All())
	}
	allowed := func(id string) bool { return chunks.Allowed(a, id) }
	return map[string]any{
		"name": a.Name, "api_key": a.APIKey, "csrf": auth.CSRF(a, cookie),
		"mirrors":     s.mirrorList(allowed, s.cfg.Chunks.DefaultMirrors(a)),
		"max_mirrors": maxMirrors,
		// seconds; 0: files kept until deleted, no limit
		"default_expiry": int64(a.DefaultExpiry / time.Second), "max_expiry": int64(a.MaxExpiry / time.Second),
	}
}

func (s *Server) signIn(c echo.Context) error {
	r := c.Request()
	if !s.sameOrigin(r) {
		return fail(http.StatusForbidden, "sign-in must come from this server's own page")
	}
	f, err := s.smallForm(c)
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := s.authenticate(r.Context(), f.Values)
	if err != nil {
		p := asProblem(err)
		if p.status == http.StatusBadRequest {
			p.status = http.StatusUnauthorized
		}
		return p
	}
	exp := s.cfg.Clock().Add(sessionLife)
	v, err := auth.NewSession(a, exp)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{
		Name: auth.SessionCookie, Value: v, Path: "/", Expires: exp, MaxAge: int(sessionLife / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: strings.HasPrefix(s.cfg.PublicURL, "https:"),
	})
	return c.JSON(http.StatusOK, s.sessionInfo(a, v))
}

func (s *Server) signOut(c echo.Context) error {
	r := c.Request()
	if !s.sameOrigin(r) {
		return fail(http.StatusForbidden, "sign-out must come from this server's own page")
	}
	// Ending the session in the store, not only in this browser, makes a
	// copy of the cookie worthless too.
	if _, cookie, err := s.auth.Session(r); err == nil {
		if err := s.auth.SignOut(r.Context(), cookie); err != nil {
			return unavailable("cannot end the session", err)
		}
	} else if !noSession(err) {
		return authProblem(err, nil, nil)
	}
	c.SetCookie(&http.Cookie{
		Name: auth.SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: strings.HasPrefix(s.cfg.PublicURL, "https:"),
	})
	return c.NoContent(http.StatusNoContent)
}

// whoAmI tells the page whether it is signed in, and its CSRF token.
func (s *Server) whoAmI(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	a, cookie, err := s.auth.Session(c.Request())
	if noSession(err) {
		return fail(http.StatusUnauthorized, "not signed in")
	}
	if err != nil {
		return authProblem(err, nil, nil)
	}
	return c.JSON(http.StatusOK, s.sessionInfo(a, cookie))
}
