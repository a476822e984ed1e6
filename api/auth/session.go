package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acestash/acestash/store"
)

// Browser sessions. A session is a signed cookie, not a record: any node
// verifies it with a key derived from the account's stored token hash, so
// it works across nodes, and it dies when the account's token changes or
// it is signed out (a mark in the store's counters).

// SessionCookie is the name of the session's cookie.
const SessionCookie = "acestash_session"

// webKey is the signing key of an account's sessions.
func webKey(a store.Account) []byte {
	m := hmac.New(sha256.New, a.TokenHash)
	m.Write([]byte("acestash web session v1"))
	return m.Sum(nil)
}

// MAC is the HMAC-SHA-256 of parts joined by NUL under key, base64url:
// the signature of sessions, and of other tokens derived from an account.
func MAC(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// NewSession returns a cookie value for the account, valid until expires:
// api_key.expiry.nonce.signature.
func NewSession(a store.Account, expires time.Time) (string, error) {
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return "", err
	}
	body := a.APIKey + "." + strconv.FormatInt(expires.Unix(), 10) + "." + base64.RawURLEncoding.EncodeToString(n[:])
	return body + "." + MAC(webKey(a), "session", body), nil
}

// CSRF is the token a session's requests must carry besides the cookie.
func CSRF(a store.Account, cookie string) string {
	return MAC(webKey(a), "csrf", cookie)
}

// signedOut is the store counter that, once above zero, says the session
// with the nonce was signed out; it lapses when the session would have.
func signedOut(nonce string) string { return "web-signed-out:" + nonce }

// Session returns the account of a request's session cookie, and the
// cookie. It checks the signature, the expiry and the sign-out mark, not a
// CSRF token. No cookie is Missing; one that is no longer good is Wrong.
func (a *Authenticator) Session(r *http.Request) (store.Account, string, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return store.Account{}, "", missing
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 4 {
		return store.Account{}, "", wrong
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !a.clock().Before(time.Unix(exp, 0)) {
		return store.Account{}, "", wrong
	}
	acc, err := a.store.Account(r.Context(), parts[0])
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, "", wrong
	}
	if err != nil {
		return store.Account{}, "", unavailable(err)
	}
	body := strings.Join(parts[:3], ".")
	if !hmac.Equal([]byte(parts[3]), []byte(MAC(webKey(acc), "session", body))) {
		return store.Account{}, "", wrong
	}
	ended, err := a.store.Count(r.Context(), signedOut(parts[2]), 0, time.Unix(exp, 0))
	if err != nil {
		return store.Account{}, "", unavailable(err)
	}
	if ended > 0 {
		return store.Account{}, "", wrong
	}
	return acc, c.Value, nil
}

// SignOut marks the session of a cookie Session returned as ended, on
// every node, until it would have expired.
func (a *Authenticator) SignOut(ctx context.Context, cookie string) error {
	parts := strings.Split(cookie, ".")
	if len(parts) != 4 {
		return fmt.Errorf("sign out: not a session cookie")
	}
	exp, _ := strconv.ParseInt(parts[1], 10, 64)
	if _, err := a.store.Count(ctx, signedOut(parts[2]), 1, time.Unix(exp, 0)); err != nil {
		return unavailable(err)
	}
	return nil
}
