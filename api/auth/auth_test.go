package auth

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/boltstore"
	"github.com/acestash/acestash/store/storetest"
)

// open returns an authenticator over a fresh embedded store holding one
// account, that account, its token and the store.
func open(t *testing.T) (*Authenticator, store.Account, string, *boltstore.Store, *storetest.Clock) {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch())
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "acestash.db"), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	acc, token, err := store.NewAccount("tester")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccount(t.Context(), acc); err != nil {
		t.Fatal(err)
	}
	return New(s, clock.Now), acc, token, s, clock
}

// kind is the Kind of err's Problem, 0 for nil, -1 for another error.
func kind(err error) Kind {
	if err == nil {
		return 0
	}
	if p, ok := As(err); ok {
		return p.Kind
	}
	return -1
}

func TestEveryCredentialForm(t *testing.T) {
	a, acc, token, _, _ := open(t)
	ctx := t.Context()
	rocket := func(id, tok string) *http.Request {
		r, _ := http.NewRequestWithContext(ctx, "POST", "/", nil)
		r.Header.Set("X-User-Id", id)
		r.Header.Set("X-Auth-Token", tok)
		return r
	}
	cases := []struct {
		name string
		call func() (store.Account, error)
		want Kind
	}{
		{"key", func() (store.Account, error) { return a.Key(ctx, acc.APIKey, token) }, 0},
		{"key, wrong token", func() (store.Account, error) { return a.Key(ctx, acc.APIKey, "nope") }, Wrong},
		{"key, unknown", func() (store.Account, error) { return a.Key(ctx, "nobody", token) }, Wrong},
		{"key, no token", func() (store.Account, error) { return a.Key(ctx, acc.APIKey, "") }, Missing},
		{"pair", func() (store.Account, error) { return a.Pair(ctx, acc.APIKey+":"+token) }, 0},
		{"pair, wrong", func() (store.Account, error) { return a.Pair(ctx, acc.APIKey+":x") }, Wrong},
		{"pair, no colon", func() (store.Account, error) { return a.Pair(ctx, acc.APIKey) }, Missing},
		{"pair, empty", func() (store.Account, error) { return a.Pair(ctx, "") }, Missing},
		{"rocket, user id", func() (store.Account, error) { return a.Rocket(rocket(acc.UserID, token)) }, 0},
		{"rocket, api key", func() (store.Account, error) { return a.Rocket(rocket(acc.APIKey, token)) }, 0},
		{"rocket, wrong", func() (store.Account, error) { return a.Rocket(rocket(acc.UserID, "x")) }, Wrong},
		{"rocket, none", func() (store.Account, error) { return a.Rocket(rocket("", "")) }, Missing},
	}
	for _, c := range cases {
		got, err := c.call()
		if k := kind(err); k != c.want {
			t.Errorf("%s: kind %d (%v), want %d", c.name, k, err, c.want)
		}
		if err == nil && got.APIKey != acc.APIKey {
			t.Errorf("%s: account %q, want %q", c.name, got.APIKey, acc.APIKey)
		}
	}
}

func TestBearer(t *testing.T) {
	for h, want := range map[string]string{
		"Bearer k:t": "k:t", "bearer  k:t ": "k:t", "Basic k:t": "", "Bearer": "", "": "", "Bearer  ": "",
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", h)
		got, ok := Bearer(r)
		if got != want || ok != (want != "") {
			t.Errorf("Bearer(%q) = %q, %v; want %q", h, got, ok, want)
		}
	}
}

func TestSession(t *testing.T) {
	a, acc, _, _, clock := open(t)
	ctx := t.Context()
	withCookie := func(v string) *http.Request {
		r, _ := http.NewRequestWithContext(ctx, "GET", "/", nil)
		if v != "" {
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: v})
		}
		return r
	}
	v, err := NewSession(acc, clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got, cookie, err := a.Session(withCookie(v))
	if err != nil || got.APIKey != acc.APIKey || cookie != v {
		t.Fatalf("live session: %q %v", got.APIKey, err)
	}
	if _, _, err := a.Session(withCookie("")); kind(err) != Missing {
		t.Errorf("no cookie: %v, want Missing", err)
	}
	if _, _, err := a.Session(withCookie(v[:len(v)-2] + "xx")); kind(err) != Wrong {
		t.Errorf("forged signature: %v, want Wrong", err)
	}
	clock.Advance(2 * time.Hour)
	if _, _, err := a.Session(withCookie(v)); kind(err) != Wrong {
		t.Errorf("expired: %v, want Wrong", err)
	}
	v, _ = NewSession(acc, clock.Now().Add(time.Hour))
	if err := a.SignOut(ctx, v); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Session(withCookie(v)); kind(err) != Wrong {
		t.Errorf("signed out: %v, want Wrong", err)
	}
}

// TestStoreDown: a store that does not answer is Unavailable for every
// form of credentials, never a wrong key.
func TestStoreDown(t *testing.T) {
	a, acc, token, s, clock := open(t)
	v, _ := NewSession(acc, clock.Now().Add(time.Hour))
	s.Close()
	ctx := t.Context()
	r, _ := http.NewRequestWithContext(ctx, "GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: v})
	r.Header.Set("X-User-Id", acc.UserID)
	r.Header.Set("X-Auth-Token", token)
	_, err1 := a.Key(ctx, acc.APIKey, token)
	_, err2 := a.Pair(ctx, acc.APIKey+":"+token)
	_, err3 := a.Rocket(r)
	_, _, err4 := a.Session(r)
	for i, err := range []error{err1, err2, err3, err4} {
		if kind(err) != Unavailable {
			t.Errorf("call %d with the store closed: %v, want Unavailable", i+1, err)
		}
	}
}
