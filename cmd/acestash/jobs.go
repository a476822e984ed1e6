package main

import (
	"context"
	"errors"
	"time"

	"github.com/acestash/acestash/store"
)

// Background jobs that one node of a cluster runs at a time: each node
// tries every interval, and the one that holds the job's lock in the store
// runs it. The lock outlasts an interval by half, so the node that holds
// it keeps it, and another takes over once that node stops.

// job runs fn every interval while this node holds the lock name, until ctx
// ends.
func (a *app) job(ctx context.Context, name string, interval time.Duration, fn func(context.Context) (int, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := a.store.Lock(ctx, name, a.id, a.clock().Add(interval+interval/2))
		if errors.Is(err, store.ErrLeased) {
			continue
		}
		if err != nil {
			a.log.Warn("take job lock", "job", name, "err", err)
			continue
		}
		n, err := fn(ctx)
		if err != nil {
			a.log.Warn("job failed", "job", name, "err", err)
		} else if n > 0 {
			a.log.Info("job done", "job", name, "count", n)
		}
	}
}
