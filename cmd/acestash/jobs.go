package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/acestash/acestash/store"
)

// Background jobs that one node of a cluster runs at a time: each node
// tries every interval, and the one that holds the job's lock in the store
// runs it. The lock outlasts an interval by half, so the node that holds
// it keeps it, and another takes over once that node stops. A run that
// lasts longer renews the lock as it goes, so no other node starts the job
// meanwhile; one that loses the lock stops.

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
		err := a.lockJob(ctx, name, interval)
		if errors.Is(err, store.ErrLeased) {
			continue
		}
		if err != nil {
			a.log.Warn("take job lock", "job", name, "err", err)
			continue
		}
		n, err := a.runJob(ctx, name, interval, fn)
		if err != nil {
			a.log.Warn("job failed", "job", name, "err", err)
		} else if n > 0 {
			a.log.Info("job done", "job", name, "count", n)
		}
	}
}

func (a *app) lockJob(ctx context.Context, name string, interval time.Duration) error {
	return a.store.Lock(ctx, name, a.id, a.clock().Add(interval+interval/2))
}

// runJob runs fn under the job's lock, renewing it every half interval; fn's
// context ends if the lock passes to another node.
func (a *app) runJob(ctx context.Context, name string, interval time.Duration, fn func(context.Context) (int, error)) (int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			err := a.lockJob(ctx, name, interval)
			if errors.Is(err, store.ErrLeased) {
				cancel(fmt.Errorf("job %s: the lock passed to another node: %w", name, err))
				return
			}
			if err != nil && ctx.Err() == nil {
				a.log.Warn("renew job lock", "job", name, "err", err)
			}
		}
	})
	return fn(ctx)
}
