package api

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/acestash/acestash/api/auth"
	"github.com/acestash/acestash/store"
)

// Every dialect asks package auth who a request is from and words its
// refusal here: missing and wrong credentials as the dialect's own
// problems, a store that did not answer as a 503 worth retrying.

// authProblem words an error of package auth; missing and wrong, when nil,
// leave those kinds as they are.
func authProblem(err error, missing, wrong *problem) error {
	p, ok := auth.As(err)
	switch {
	case !ok:
		return err
	case p.Kind == auth.Unavailable:
		return unavailable("cannot check credentials; retry later", err)
	case p.Kind == auth.Missing && missing != nil:
		return missing
	case p.Kind == auth.Wrong && wrong != nil:
		return wrong
	}
	return err
}

// authenticate returns the account whose api_key and api_token the form
// has, or, when it has neither, the account of the request's browser session.
func (s *Server) authenticate(ctx context.Context, v url.Values) (store.Account, error) {
	key, token := v.Get("api_key"), v.Get("api_token")
	if a, ok := sessionAccount(ctx); ok && key == "" && token == "" {
		return a, nil
	}
	a, err := s.auth.Key(ctx, key, token)
	return a, authProblem(err, badRequest("api_key and api_token are required"), badRequest("invalid api_key or api_token"))
}

// rawAccount returns the account a POST /upload belongs to: the key of
// ?key= or Authorization: Bearer (with the api_token or the account's
// ShareX token), else, unless keys are required, the anonymous account.
func (s *Server) rawAccount(ctx context.Context, r *http.Request) (store.Account, error) {
	cred := r.URL.Query().Get("key")
	if b, ok := auth.Bearer(r); ok && cred == "" {
		cred = b
	}
	if cred == "" && !s.cfg.Raw.RequireKey {
		a, err := s.cfg.Store.Account(ctx, s.cfg.Raw.Anonymous)
		if errors.Is(err, store.ErrNotFound) {
			return store.Account{}, fmt.Errorf("anonymous account: %w", err)
		}
		if err != nil {
			return store.Account{}, unavailable("cannot read the anonymous account; retry later", err)
		}
		return a, nil
	}
	unauthorized := fail(http.StatusUnauthorized,
		"a key is required: add ?key=<api_key>:<api_token> to the URL or send Authorization: Bearer <api_key>:<api_token>")
	sharex := func(acc store.Account, token string) bool { return hmac.Equal([]byte(token), []byte(sharexToken(acc))) }
	a, err := s.auth.PairAlso(ctx, cred, sharex)
	return a, authProblem(err, unauthorized, unauthorized)
}

// rocketAccount checks X-User-Id (the account's user id or api key) and
// X-Auth-Token (its api token).
func (s *Server) rocketAccount(r *http.Request) (store.Account, error) {
	unauthorized := fail(http.StatusUnauthorized, "unauthorized")
	a, err := s.auth.Rocket(r)
	return a, authProblem(err, unauthorized, unauthorized)
}
