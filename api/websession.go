package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// Browser sessions (README, "The web page"). A session is a signed cookie,
// not a record: any node verifies it with a key derived from the account's
// stored token hash, so it works across nodes, and it dies when the
// account's token changes or it is signed out (a mark in the store). The page's scripts never see the api_token: the
// MirrorAce calls accept the cookie together with the session's CSRF token
// in an X-CSRF-Token header instead of api_key and api_token.

const (
	sessionCookie = "acestash_session"
	sessionLife   = 12 * time.Hour
	csrfHeader    = "X-CSRF-Token"
)

// webKey is the signing key of an account's sessions.
func webKey(a store.Account) []byte {
	m := hmac.New(sha256.New, a.TokenHash)
	m.Write([]byte("acestash web session v1"))
	return m.Sum(nil)
}

func mac(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession returns a cookie value for the account, valid until expires:
// api_key.expiry.nonce.signature.
func newSession(a store.Account, expires time.Time) (string, error) {
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return "", err
	}
	body := a.APIKey + "." + strconv.FormatInt(expires.Unix(), 10) + "." + base64.RawURLEncoding.EncodeToString(n[:])
	return body + "." + mac(webKey(a), "session", body), nil
}

// csrfToken is the token a session's requests must carry in X-CSRF-Token.
func csrfToken(a store.Account, cookie string) string {
	return mac(webKey(a), "csrf", cookie)
}

// errNoSession means a request carries no valid session.
var errNoSession = errors.New("no valid session")

// session returns the account of a request's session cookie, and the
// cookie. It checks the signature and expiry, not the CSRF token.
func (s *Server) session(r *http.Request) (store.Account, string, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return store.Account{}, "", errNoSession
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 4 {
		return store.Account{}, "", errNoSession
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !s.cfg.Clock().Before(time.Unix(exp, 0)) {
		return store.Account{}, "", errNoSession
	}
	a, err := s.cfg.Store.Account(r.Context(), parts[0])
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, "", errNoSession
	}
	if err != nil {
		return store.Account{}, "", unavailable("cannot check the session", err)
	}
	body := strings.Join(parts[:3], ".")
	if !hmac.Equal([]byte(parts[3]), []byte(mac(webKey(a), "session", body))) {
		return store.Account{}, "", errNoSession
	}
	ended, err := s.cfg.Store.Count(r.Context(), signedOut(parts[2]), 0, time.Unix(exp, 0))
	if err != nil {
		return store.Account{}, "", unavailable("cannot check the session", err)
	}
	if ended > 0 {
		return store.Account{}, "", errNoSession
	}
	return a, c.Value, nil
}

// signedOut is the store counter that, once above zero, says the session
// with the nonce was signed out; it lapses when the session would have.
func signedOut(nonce string) string { return "web-signed-out:" + nonce }

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
		a, cookie, err := s.session(r)
		if errors.Is(err, errNoSession) {
			return badRequest("the session has ended; sign in again")
		}
		if err != nil {
			return err
		}
		if !hmac.Equal([]byte(tok), []byte(csrfToken(a, cookie))) {
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
		"name": a.Name, "api_key": a.APIKey, "csrf": csrfToken(a, cookie),
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
	v, err := newSession(a, exp)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{
		Name: sessionCookie, Value: v, Path: "/", Expires: exp, MaxAge: int(sessionLife / time.Second),
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
	if _, cookie, err := s.session(r); err == nil {
		parts := strings.Split(cookie, ".")
		exp, _ := strconv.ParseInt(parts[1], 10, 64)
		if _, err := s.cfg.Store.Count(r.Context(), signedOut(parts[2]), 1, time.Unix(exp, 0)); err != nil {
			return unavailable("cannot end the session", err)
		}
	} else if !errors.Is(err, errNoSession) {
		return err
	}
	c.SetCookie(&http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: strings.HasPrefix(s.cfg.PublicURL, "https:"),
	})
	return c.NoContent(http.StatusNoContent)
}

// whoAmI tells the page whether it is signed in, and its CSRF token.
func (s *Server) whoAmI(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	a, cookie, err := s.session(c.Request())
	if errors.Is(err, errNoSession) {
		return fail(http.StatusUnauthorized, "not signed in")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.sessionInfo(a, cookie))
}
