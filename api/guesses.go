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

// try reserves a try of addr at the file's password and reports whether
// it may be made. The reservation counts as a wrong guess of addr's until
// the try is settled with right or wrong, so that guesses sent all at once
// are limited like guesses sent one after another. A refused try is
// settled already.
func (g guesses) try(ctx context.Context, slug, addr string) (bool, error) {
	key := "guess:" + slug + ":" + addr
	mine, err := g.count(ctx, key, 1)
	if err != nil {
		return false, err
	}
	ok, err := g.allowed(ctx, slug, addr, mine-1)
	if !ok || err != nil {
		g.undo(ctx, key)
	}
	return ok && err == nil, err
}

// allowed reports whether addr, with before tries at the file counted
// already, may try once more.
func (g guesses) allowed(ctx context.Context, slug, addr string, before int64) (bool, error) {
	if before <= 0 {
		return true, nil
	}
	if before >= guessFileAddr {
		return false, nil
	}
	all, err := g.count(ctx, "guess-addr:"+addr, 0)
	if err != nil || all >= guessAddr {
		return false, err
	}
	file, err := g.count(ctx, "guess-file:"+slug, 0)
	return err == nil && file < guessFile, err
}

// right settles a try that gave the right password: it does not count.
func (g guesses) right(ctx context.Context, slug, addr string) {
	g.undo(ctx, "guess:"+slug+":"+addr)
}

func (g guesses) undo(ctx context.Context, key string) {
	g.count(context.WithoutCancel(ctx), key, -1)
}

// wrong settles a try that gave a wrong password: it stays counted for
// the file and address, and counts for the address and for the file.
func (g guesses) wrong(ctx context.Context, slug, addr string) error {
	for _, key := range []string{"guess-addr:" + addr, "guess-file:" + slug} {
		if _, err := g.count(context.WithoutCancel(ctx), key, 1); err != nil {
			return fmt.Errorf("count a wrong password: %w", err)
		}
	}
	return nil
}
