package api

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/acestash/acestash/store"
)

// Wrong file passwords are counted in the store, so that every node sees
// every guess. An address (IPv6 counts by its /64, which one host can fill
// with addresses) is refused a file after guessFileAddr wrong guesses, and
// a file for which it has guessed wrong at all once it is over guessAddr
// over all files. Each file also has a cap over every address: after
// guessFile wrong guesses it is refused to everyone for a window, and each
// time the cap is reached again within a day, for twice as long (15 min,
// 30 min, 1 h … at most a day). Only its owner, signed in on the page, is
// never refused and never counted.
const (
	guessFileAddr = 10  // wrong guesses of one address for one file
	guessAddr     = 50  // of one address, over all files
	guessFile     = 100 // for one file, over all addresses, before it is locked
	guessWindow   = 15 * time.Minute
	guessMaxLock  = 24 * time.Hour
)

// guesses counts wrong passwords in the store.
type guesses struct {
	store store.Coordination
	clock store.Clock
}

func (g guesses) count(ctx context.Context, key string, add int64, d time.Duration) (int64, error) {
	return g.store.Count(ctx, key, add, g.clock().Add(d))
}

// who is the part of a client address guesses are counted under: the
// address, or for IPv6 its /64.
func who(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// fileKeys are the store keys of a file's cap: the strikes (times the cap
// was reached in the last day), and at the current strike level the lock
// and the count of tries.
func fileKeys(slug string, strikes int64) (strikeKey, lockKey, triesKey string) {
	lvl := strconv.FormatInt(strikes, 10)
	return "guess-strikes:" + slug, "guess-lock:" + slug + ":" + lvl, "guess-file:" + slug + ":" + lvl
}

// lockFor is how long the file is locked at its nth strike.
func lockFor(n int64) time.Duration {
	return min(guessWindow<<min(n-1, 10), guessMaxLock)
}

// state reads the file's strikes and whether it is locked now.
func (g guesses) state(ctx context.Context, slug string) (strikes int64, locked bool, err error) {
	sk, _, _ := fileKeys(slug, 0)
	if strikes, err = g.count(ctx, sk, 0, guessMaxLock); err != nil || strikes == 0 {
		return strikes, false, err
	}
	_, lk, _ := fileKeys(slug, strikes)
	n, err := g.count(ctx, lk, 0, 0)
	return strikes, n > 0, err
}

// try reserves a try of addr at the file's password and reports whether
// it may be made. The reservation counts as a wrong guess (of the address
// and for the file) until the try is settled with right or wrong, so that
// guesses sent all at once are limited like guesses sent one after
// another. A refused try is settled already.
func (g guesses) try(ctx context.Context, slug, addr string) (bool, error) {
	strikes, locked, err := g.state(ctx, slug)
	if err != nil || locked {
		return false, err
	}
	_, _, tk := fileKeys(slug, strikes)
	mine := "guess:" + slug + ":" + who(addr)
	n, err := g.count(ctx, mine, 1, guessWindow)
	if err != nil {
		return false, err
	}
	ok, err := g.allowed(ctx, addr, n-1)
	if ok && err == nil {
		var file int64
		file, err = g.count(ctx, tk, 1, guessWindow)
		if err == nil && file > guessFile {
			g.undo(ctx, tk)
			ok = false
		}
	}
	if !ok || err != nil {
		g.undo(ctx, mine)
	}
	return ok && err == nil, err
}

// allowed reports whether addr, with before tries at the file counted
// already, may try once more.
func (g guesses) allowed(ctx context.Context, addr string, before int64) (bool, error) {
	if before <= 0 {
		return true, nil
	}
	if before >= guessFileAddr {
		return false, nil
	}
	all, err := g.count(ctx, "guess-addr:"+who(addr), 0, guessWindow)
	return err == nil && all < guessAddr, err
}

// right settles a try that gave the right password: it does not count.
func (g guesses) right(ctx context.Context, slug, addr string) {
	g.undo(ctx, "guess:"+slug+":"+who(addr))
	if strikes, _, err := g.state(ctx, slug); err == nil {
		_, _, tk := fileKeys(slug, strikes)
		g.undo(ctx, tk)
	}
}

func (g guesses) undo(ctx context.Context, key string) {
	g.count(context.WithoutCancel(ctx), key, -1, guessWindow)
}

// wrong settles a try that gave a wrong password: it stays counted for
// the file and address, and counts for the address. The wrong guess that
// uses up the file's tries locks it, for longer at each strike.
func (g guesses) wrong(ctx context.Context, slug, addr string) error {
	ctx = context.WithoutCancel(ctx)
	if _, err := g.count(ctx, "guess-addr:"+who(addr), 1, guessWindow); err != nil {
		return fmt.Errorf("count a wrong password: %w", err)
	}
	strikes, _, err := g.state(ctx, slug)
	if err != nil {
		return fmt.Errorf("count a wrong password: %w", err)
	}
	sk, _, tk := fileKeys(slug, strikes)
	n, err := g.count(ctx, tk, 0, guessWindow)
	if err != nil || n < guessFile {
		return err
	}
	// Of the nodes that get here at one level, the first strikes: the lock
	// of the next level first, so no try slips in between.
	first, err := g.count(ctx, "guess-struck:"+slug+":"+strconv.FormatInt(strikes, 10), 1, guessMaxLock)
	if err != nil || first != 1 {
		return err
	}
	_, lk, _ := fileKeys(slug, strikes+1)
	if _, err := g.count(ctx, lk, 1, lockFor(strikes+1)); err != nil {
		return fmt.Errorf("lock a file's password: %w", err)
	}
	if _, err := g.count(ctx, sk, 1, guessMaxLock); err != nil {
		return fmt.Errorf("lock a file's password: %w", err)
	}
	return nil
}

// Guessing is how a file's password has been guessed at lately, for its
// owner's page.
type Guessing struct {
	Wrong   int64 // wrong guesses in the current window, over all addresses
	Strikes int64 // times in the last day the file's cap was reached
	Locked  bool  // guessing is refused to everyone but the owner now
}

// guessing reads how the file's password has been guessed at.
func (g guesses) guessing(ctx context.Context, slug string) (Guessing, error) {
	strikes, locked, err := g.state(ctx, slug)
	if err != nil {
		return Guessing{}, err
	}
	_, _, tk := fileKeys(slug, strikes)
	n, err := g.count(ctx, tk, 0, guessWindow)
	return Guessing{Wrong: n, Strikes: strikes, Locked: locked}, err
}
