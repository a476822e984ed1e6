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
// when it runs out. A request that wants a lock held on the same node asks
// the holder to let go, as tusd's own lockers do; one held on another node
// is waited for.
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
	stop    chan struct{}
	done    chan struct{}
}

// Lock waits until the upload's lease is this lock's or ctx ends.
func (k *lock) Lock(ctx context.Context, requestRelease func()) error {
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		err := k.l.chunks.Hold(ctx, k.id, k.holder, k.l.clock().Add(k.l.ttl))
		switch {
		case err == nil:
			k.release, k.stop, k.done = requestRelease, make(chan struct{}), make(chan struct{})
			k.l.mu.Lock()
			k.l.held[k.id] = k
			k.l.mu.Unlock()
			go k.renew()
			return nil
		case errors.Is(err, store.ErrNotFound):
			return handler.ErrNotFound
		case !errors.Is(err, store.ErrLeased):
			k.l.log.Warn("tus: lock upload", "id", k.id, "err", err)
			return errUnavailable("cannot lock the upload; retry later")
		}
		k.l.mu.Lock()
		if other, ok := k.l.held[k.id]; ok {
			other.release()
		}
		k.l.mu.Unlock()
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return handler.ErrLockTimeout
		}
	}
}

// renew keeps the lease until Unlock.
func (k *lock) renew() {
	defer close(k.done)
	t := time.NewTicker(k.l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		err := k.l.chunks.Hold(context.Background(), k.id, k.holder, k.l.clock().Add(k.l.ttl))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			k.l.log.Warn("tus: renew upload lock", "id", k.id, "err", err)
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
