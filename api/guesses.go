package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Wrong file passwords this node accepts per file: a burst of guessLimit,
// then one every guessEvery.
const (
	guessLimit = 10
	guessEvery = 6 * time.Second
	// guessFiles bounds how many files' counts are kept; full buckets are
	// dropped first.
	guessFiles = 10000
)

// guesses counts wrong passwords per file, so a password cannot be
// guessed faster than the limit allows from this node.
type guesses struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// blocked reports whether the file has had its fill of wrong passwords.
func (g *guesses) blocked(slug string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.m[slug]
	return ok && l.Tokens() < 1
}

// wrong counts a wrong password for the file.
func (g *guesses) wrong(slug string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]*rate.Limiter{}
	}
	l, ok := g.m[slug]
	if !ok {
		if len(g.m) >= guessFiles {
			for k, v := range g.m {
				if v.Tokens() >= guessLimit {
					delete(g.m, k)
				}
			}
		}
		l = rate.NewLimiter(rate.Every(guessEvery), guessLimit)
		g.m[slug] = l
	}
	l.Allow()
}
