package mirrors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// Health tracks which mirrors answered their last health check. Mirrors
// that do not implement Pinger are always healthy.
type Health struct {
	set     *Set
	timeout time.Duration
	log     *slog.Logger

	mu      sync.RWMutex
	down    map[string]error
	pinging map[string]bool // mirrors Report is checking
}

// NewHealth returns a tracker for the set; each ping gets timeout.
func NewHealth(set *Set, timeout time.Duration, log *slog.Logger) *Health {
	return &Health{set: set, timeout: timeout, log: log, down: map[string]error{}, pinging: map[string]bool{}}
}

// Err returns why the mirror failed its last check, or nil.
func (h *Health) Err(id string) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.down[id]
}

// Check pings every mirror once, in parallel, and records the results.
func (h *Health) Check(ctx context.Context) {
	var wg sync.WaitGroup
	for _, e := range h.set.All() {
		if p, ok := As[Pinger](e.Mirror); ok {
			wg.Go(func() { h.check(ctx, e.ID, p) })
		}
	}
	wg.Wait()
}

// check pings one mirror and records the result.
func (h *Health) check(ctx context.Context, id string, p Pinger) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	err := p.Ping(ctx)
	if err != nil {
		err = fmt.Errorf("mirror %s failed its health check: %w", id, err)
	}
	h.set1(id, err)
}

// set1 records the mirror's state, logging a change.
func (h *Health) set1(id string, err error) {
	h.mu.Lock()
	before := h.down[id]
	if err != nil {
		h.down[id] = err
	} else {
		delete(h.down, id)
	}
	h.mu.Unlock()
	switch {
	case err != nil && before == nil:
		h.log.Warn("mirror down", "mirror", id, "err", err)
	case err == nil && before != nil:
		h.log.Info("mirror back up", "mirror", id)
	}
}

// Report tells h that an operation on the mirror failed with err, so the
// next requests need not find out again. A mirror that refused or reset
// the connection is down at once; after any other failure (a stall, a
// timeout, an error answer) it is pinged again now, in the background,
// and a hung mirror is down when its ping times out. The next periodic
// check brings a mirror back.
func (h *Health) Report(id string, err error) {
	if Refused(err) {
		h.set1(id, fmt.Errorf("mirror %s refused the connection: %w", id, err))
		return
	}
	e, ok := h.set.Get(id)
	p, pinger := e.Mirror.(Pinger)
	if !ok || !pinger {
		return
	}
	h.mu.Lock()
	busy := h.pinging[id]
	h.pinging[id] = true
	h.mu.Unlock()
	if busy {
		return
	}
	go func() {
		h.check(context.Background(), id, p)
		h.mu.Lock()
		delete(h.pinging, id)
		h.mu.Unlock()
	}()
}

// Refused reports whether err says the other end refused, reset or
// closed the connection: a process that is not there, which answering
// again at once will not change.
func Refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// Run checks every interval until ctx ends.
func (h *Health) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		h.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
