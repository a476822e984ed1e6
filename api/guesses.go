package api

import (
	"context"
	"fmt"
	"time"

	"github.com/acestash/acestash/store"
)

// Wrong file passwords are counted in the store, so that every node sees
// every guess: per file and client address, per address, and per file,
// each in a fixed window. An address is refused when it has guessed wrong
// for the file too often, or has guessed wrong for the file at all while
// the address (over all files) or the file (over all addresses) is over
// its limit. An address that has not guessed wrong for a file is never
// refused it, so its owner is not locked out by someone else's guessing.
const (
	guessFileAddr = 10  // wrong guesses of one address for one file
	guessAddr     = 50  // of one address, over all files
	guessFile     = 100 // for one file, over all addresses
	guessWindow   = 15 * time.Minute
)

// guesses counts wrong passwords in the store.
type guesses struct {
	store store.Store
	clock store.Clock
}

func (g guesses) count(ctx context.Context, key string, add int64) (int64, error) {
	return g.store.Count(ctx, key, add, g.clock().Add(guessWindow))
}

// blocked reports whether addr may not try a password for the file now.
func (g guesses) blocked(ctx context.Context, slug, addr string) (bool, error) {
	mine, err := g.count(ctx, "guess:"+slug+":"+addr, 0)
	if err != nil || mine == 0 {
		return false, err
	}
	if mine >= guessFileAddr {
		return true, nil
	}
	all, err := g.count(ctx, "guess-addr:"+addr, 0)
	if err != nil || all >= guessAddr {
		return err == nil, err
	}
	file, err := g.count(ctx, "guess-file:"+slug, 0)
	return err == nil && file >= guessFile, err
}

// wrong counts a wrong password of addr for the file.
func (g guesses) wrong(ctx context.Context, slug, addr string) error {
	for _, key := range []string{"guess:" + slug + ":" + addr, "guess-addr:" + addr, "guess-file:" + slug} {
		if _, err := g.count(context.WithoutCancel(ctx), key, 1); err != nil {
			return fmt.Errorf("count a wrong password: %w", err)
		}
	}
	return nil
}
