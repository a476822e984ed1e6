// Package auth tells which account a request speaks for, whatever its
// dialect: api_key and api_token, "key:token" (a URL parameter or
// Authorization: Bearer), Rocket.Chat's X-User-Id and X-Auth-Token, or a
// browser session's signed cookie. It fails with a *Problem of one of three
// kinds, so every dialect words a failure its own way and answers a store
// that does not reply as unavailable (503).
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/acestash/acestash/store"
)

// Kind says why a request was not admitted.
type Kind int

const (
	// Missing: the request carries no credentials (or not all of them).
	Missing Kind = iota + 1
	// Wrong: the credentials name no account, or the token is not its.
	Wrong
	// Unavailable: the store did not answer; worth retrying.
	Unavailable
)

// Problem is why a request was not admitted.
type Problem struct {
	Kind Kind
	Err  error // the store's error, for Unavailable
}

func (p *Problem) Error() string {
	switch p.Kind {
	case Missing:
		return "no credentials"
	case Wrong:
		return "wrong credentials"
	}
	return fmt.Sprintf("cannot check credentials: %v", p.Err)
}

func (p *Problem) Unwrap() error { return p.Err }

// As returns the Problem in err's chain.
func As(err error) (*Problem, bool) {
	var p *Problem
	ok := errors.As(err, &p)
	return p, ok
}

// Store is what authenticating reads: accounts, and the counters in which
// signed-out sessions are marked.
type Store interface {
	store.Accounts
	store.Coordination
}

// Authenticator checks credentials against the store.
type Authenticator struct {
	store Store
	clock store.Clock
}

// New returns an Authenticator over s; clock tells sessions' expiry.
func New(s Store, clock store.Clock) *Authenticator {
	if clock == nil {
		clock = time.Now
	}
	return &Authenticator{store: s, clock: clock}
}

var (
	missing = &Problem{Kind: Missing}
	wrong   = &Problem{Kind: Wrong}
)

// unavailable wraps a store error that is not an answer.
func unavailable(err error) *Problem { return &Problem{Kind: Unavailable, Err: err} }

// Key returns the account with api_key key whose api_token is token.
func (a *Authenticator) Key(ctx context.Context, key, token string) (store.Account, error) {
	return a.keyAlso(ctx, key, token, nil)
}

// Pair returns the account of "<api_key>:<api_token>"; anything else is
// Missing.
func (a *Authenticator) Pair(ctx context.Context, cred string) (store.Account, error) {
	return a.PairAlso(ctx, cred, nil)
}

// PairAlso is Pair that also admits, in place of the api_token, a token
// also accepts for the account (one derived from it, such as ShareX's).
func (a *Authenticator) PairAlso(ctx context.Context, cred string, also func(acc store.Account, token string) bool) (store.Account, error) {
	key, token, _ := strings.Cut(cred, ":")
	return a.keyAlso(ctx, key, token, also)
}

func (a *Authenticator) keyAlso(ctx context.Context, key, token string, also func(store.Account, string) bool) (store.Account, error) {
	if key == "" || token == "" {
		return store.Account{}, missing
	}
	acc, err := a.store.Account(ctx, key)
	if err == nil && also != nil && also(acc, token) {
		return acc, nil
	}
	return checked(acc, err)(token)
}

// UserID returns the account whose user id, or else api_key, is id and
// whose api_token is token: Rocket.Chat's X-User-Id and X-Auth-Token.
func (a *Authenticator) UserID(ctx context.Context, id, token string) (store.Account, error) {
	if id == "" || token == "" {
		return store.Account{}, missing
	}
	acc, err := a.store.AccountByUserID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		acc, err = a.store.Account(ctx, id)
	}
	return checked(acc, err)(token)
}

// Rocket reads Rocket.Chat's X-User-Id and X-Auth-Token headers.
func (a *Authenticator) Rocket(r *http.Request) (store.Account, error) {
	return a.UserID(r.Context(), r.Header.Get("X-User-Id"), r.Header.Get("X-Auth-Token"))
}

// checked returns a function that admits the account read from the store
// if token is its token.
func checked(acc store.Account, err error) func(token string) (store.Account, error) {
	return func(token string) (store.Account, error) {
		switch {
		case errors.Is(err, store.ErrNotFound):
			return store.Account{}, wrong
		case err != nil:
			return store.Account{}, unavailable(err)
		case !acc.CheckToken(token):
			return store.Account{}, wrong
		}
		return acc, nil
	}
}

// Bearer returns the credentials of an "Authorization: Bearer <cred>"
// header, the scheme's case ignored, and whether there were any.
func Bearer(r *http.Request) (string, bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}
