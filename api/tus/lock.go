package tus

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// locker locks uploads through the store: a lock is the lease of the
// upload's session, so a request on one node and a request on another
// never write to one upload at once. A lock lasts ttl unless renewed, and
// is renewed while its request runs; a node that dies holding one frees it
// when it runs out. A request that wants a lock held elsewhere asks the
// holder to let go, as tusd's own lockers do: on the same node directly,
// on another through the store, where the holder looks every second.
type locker struct {
	chunks *chunks.Service
	clock  store.Clock
	ttl    time.Duration
	log    *slog.Logger

	mu   sync.Mutex
	held map[string]*lock // the locks this node holds, by upload id
}

// NewLock returns an unlocked lock of the upload.
func (l *locker) NewLock(id string) (handler.Lock, error) {
	return &lock{l: l, id: id, holder: uuid.NewString()}, nil
}

// holder returns the lease holder of the upload's lock on this node.
func (l *locker) holder(id string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.held[id]
	if !ok {
		return "", false
	}
	return k.holder, true
}

// with runs fn under the upload's lock: the one this node holds for the
// request, or one taken for fn.
func (l *locker) with(ctx context.Context, id string, fn func(holder string) error) error {
	if h, ok := l.holder(id); ok {
		return fn(h)
	}
	k := &lock{l: l, id: id, holder: uuid.NewString()}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := k.Lock(ctx, func() {}); err != nil {
		return err
	}
	defer k.Unlock()
	return fn(k.holder)
}

type lock struct {
	l       *locker
	id      string
	holder  string
	release func() // asks the request holding the lock to end
	wants   int    // the lease's LeaseWants when this lock last looked
	stop    chan struct{}
	done    chan struct{}
}

// Lock waits until the upload's lease is this lock's or ctx ends. While it
// waits it asks the holder to let go: through the locker on this node,
// through the store (LeaseWants) on another.
func (k *lock) Lock(ctx context.Context, requestRelease func()) error {
	asked := false
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		sess, err := k.l.chunks.Hold(ctx, k.id, k.holder, k.l.clock().Add(k.l.ttl))
		switch {
		case err == nil:
			k.release, k.wants = requestRelease, sess.LeaseWants
			k.stop, k.done = make(chan struct{}), make(chan struct{})
			k.l.mu.Lock()
			k.l.held[k.id] = k
			k.l.mu.Unlock()
			go k.watch()
			return nil
		case errors.Is(err, store.ErrNotFound):
			return handler.ErrNotFound
		case !errors.Is(err, store.ErrLeased):
			k.l.log.Warn("tus: lock upload", "id", k.id, "err", err)
			return errUnavailable("cannot lock the upload; retry later")
		}
		k.l.mu.Lock()
		other, local := k.l.held[k.id]
		if local {
			other.release()
		}
		k.l.mu.Unlock()
		if !local && !asked {
			asked = true
			if err := k.l.chunks.Want(ctx, k.id); err != nil && !errors.Is(err, store.ErrNotFound) {
				k.l.log.Warn("tus: ask for upload lock", "id", k.id, "err", err)
			}
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return handler.ErrLockTimeout
		}
	}
}

// watch renews the lease until Unlock, and ends the request holding it
// when a request on another node asks for it, or when the lease is lost.
func (k *lock) watch() {
	defer close(k.done)
	t := time.NewTicker(min(time.Second, k.l.ttl/3))
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		ctx := context.Background()
		var wants int
		var err error
		if time.Since(renewed) >= k.l.ttl/3 {
			var sess store.Session
			sent := time.Now()
			sess, err = k.l.chunks.Hold(ctx, k.id, k.holder, k.l.clock().Add(k.l.ttl))
			if err == nil {
				wants, renewed = sess.LeaseWants, sent
			}
		} else {
			_, wants, err = k.l.chunks.Lease(ctx, k.id)
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
		case errors.Is(err, store.ErrLeased) || err != nil && time.Since(renewed) >= k.l.ttl/2:
			// Another took the lease, or it may run out before a renewal
			// lands: the request stops writing before another can begin.
			k.l.log.Warn("tus: upload lock lost; ending its request", "id", k.id, "err", err)
			k.release()
			return
		case err != nil:
			k.l.log.Warn("tus: renew upload lock", "id", k.id, "err", err)
		case wants > k.wants:
			k.wants = wants
			k.release()
		}
	}
}

// Unlock ends the lease.
func (k *lock) Unlock() error {
	close(k.stop)
	<-k.done
	k.l.mu.Lock()
	if k.l.held[k.id] == k {
		delete(k.l.held, k.id)
	}
	k.l.mu.Unlock()
	if err := k.l.chunks.Release(context.Background(), k.id, k.holder); err != nil {
		k.l.log.Warn("tus: unlock upload", "id", k.id, "err", err)
	}
	return nil
}
