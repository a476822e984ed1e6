package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/acestash/acestash/store"
)

// Background jobs that one node of a cluster runs at a time, about every
// interval. Each node looks a few times an interval whether a job is due:
// when it last ran is kept in the store, so nodes that restart more often
// than the interval do not put it off. A due job is run by the node that
// takes its lock in the store. The lock outlasts an interval by half; a
// run that lasts longer renews it as it goes, so no other node starts the
// job meanwhile, and one that loses the lock stops. A cluster's first run
// of a job comes one interval after a node first looked.

// job runs fn whenever it is due and this node holds the lock name, until
// ctx ends.
func (a *app) job(ctx context.Context, name string, interval time.Duration, fn func(context.Context) (int, error)) {
	t := time.NewTicker(max(min(interval/4, time.Minute), time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due, err := a.store.Count(ctx, "job-ran:"+name, 0, a.clock())
		if err != nil {
			a.log.Warn("read when a job ran", "job", name, "err", err)
			continue
		}
		if due > 0 {
			continue // it ran less than an interval ago
		}
		err = a.lockJob(ctx, name, interval)
		if errors.Is(err, store.ErrLeased) {
			continue
		}
		if err != nil {
			a.log.Warn("take job lock", "job", name, "err", err)
			continue
		}
		if first, err := a.firstLook(ctx, name, interval); first || err != nil {
			if err != nil {
				a.log.Warn("start a job's schedule", "job", name, "err", err)
			}
			continue
		}
		n, err := a.runJob(ctx, name, interval, fn)
		if err != nil {
			a.log.Warn("job failed", "job", name, "err", err)
		} else if n > 0 {
			a.log.Info("job done", "job", name, "count", n)
		}
		// A failed run is tried again an interval later, as a done one.
		if _, err := a.store.Count(ctx, "job-ran:"+name, 1, a.clock().Add(interval)); err != nil {
			a.log.Warn("record that a job ran", "job", name, "err", err)
		}
	}
}

// firstLook reports whether no node of the cluster ever looked at the job
// before; if so, it records that the job ran now, so that its first run
// comes an interval later. The caller holds the job's lock.
func (a *app) firstLook(ctx context.Context, name string, interval time.Duration) (bool, error) {
	now := a.clock()
	seen, err := a.store.Count(ctx, "job-seen:"+name, 0, now)
	if err != nil || seen > 0 {
		return false, err
	}
	if _, err := a.store.Count(ctx, "job-ran:"+name, 1, now.Add(interval)); err != nil {
		return false, err
	}
	_, err = a.store.Count(ctx, "job-seen:"+name, 1, now.Add(10*365*24*time.Hour))
	return true, err
}

func (a *app) lockJob(ctx context.Context, name string, interval time.Duration) error {
	return a.store.Lock(ctx, name, a.id, a.clock().Add(interval+interval/2))
}

// runJob runs fn under the job's lock, renewing it every half interval; fn's
// context ends if the lock passes to another node.
func (a *app) runJob(ctx context.Context, name string, interval time.Duration, fn func(context.Context) (int, error)) (int, error) {
	var n int
	err := a.locked(ctx, name, interval+interval/2, interval/2, false, func(ctx context.Context) (err error) {
		n, err = fn(ctx)
		return err
	})
	return n, err
}

// locked runs fn while this node holds the named lock, which it has just
// taken: the lock is renewed every every to last lease from then, and
// fn's context ends if it passes to another node. With release, the lock
// is let go when fn returns, so that another node may take it at once.
func (a *app) locked(ctx context.Context, name string, lease, every time.Duration, release bool, fn func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if release {
					a.store.Lock(context.WithoutCancel(ctx), name, a.id, a.clock())
				}
				return
			case <-t.C:
			}
			err := a.store.Lock(ctx, name, a.id, a.clock().Add(lease))
			if errors.Is(err, store.ErrLeased) {
				cancel(fmt.Errorf("%s: the lock passed to another node: %w", name, err))
				return
			}
			if err != nil && ctx.Err() == nil {
				a.log.Warn("renew a lock", "lock", name, "err", err)
			}
		}
	})
	return fn(ctx)
}
