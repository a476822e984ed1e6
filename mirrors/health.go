package mirrors

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Health tracks which mirrors answered their last health check. Mirrors
// that do not implement Pinger are always healthy.
type Health struct {
	set     *Set
	timeout time.Duration
	log     *slog.Logger

	mu   sync.RWMutex
	down map[string]error
}

// NewHealth returns a tracker for the set; each ping gets timeout.
func NewHealth(set *Set, timeout time.Duration, log *slog.Logger) *Health {
	return &Health{set: set, timeout: timeout, log: log, down: map[string]error{}}
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
		p, ok := As[Pinger](e.Mirror)
		if !ok {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, h.timeout)
			defer cancel()
			err := p.Ping(ctx)
			if err != nil {
				err = fmt.Errorf("mirror %s failed its health check: %w", e.ID, err)
			}
			h.mu.Lock()
			before := h.down[e.ID]
			if err != nil {
				h.down[e.ID] = err
			} else {
				delete(h.down, e.ID)
			}
			h.mu.Unlock()
			switch {
			case err != nil && before == nil:
				h.log.Warn("mirror down", "mirror", e.ID, "err", err)
			case err == nil && before != nil:
				h.log.Info("mirror back up", "mirror", e.ID)
			}
		})
	}
	wg.Wait()
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
