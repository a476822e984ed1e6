package tus

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// locker is tusd's Locker over the leases of package chunks: a lock is the
// lease of the upload's session, taken and renewed as every upload's is
// (lease_time), so a request on one node and a request on another never
// write to one upload at once, and a node that dies frees its uploads
// within lease_time. A request that wants a lock held elsewhere asks the
// holder to let go, as tusd's own lockers do: on the same node directly,
// on another through the store (the lease's Wanted).
type locker struct {
	chunks *chunks.Service
	log    *slog.Logger

	mu   sync.Mutex
	held map[string]*lock // the locks this node holds, by upload id
}

// NewLock returns an unlocked lock of the upload.
func (l *locker) NewLock(id string) (handler.Lock, error) {
	return &lock{l: l, id: id}, nil
}

// holder returns the lease holder of the upload's lock on this node.
func (l *locker) holder(id string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.held[id]
	if !ok || k.lease == nil {
		return "", false
	}
	return k.lease.Holder(), true
}

// with runs fn under the upload's lock: the one this node holds for the
// request, or one taken for fn.
func (l *locker) with(ctx context.Context, id string, fn func(holder string) error) error {
	if h, ok := l.holder(id); ok {
		return fn(h)
	}
	k := &lock{l: l, id: id}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := k.Lock(ctx, func() {}); err != nil {
		return err
	}
	defer k.Unlock()
	return fn(k.lease.Holder())
}

type lock struct {
	l       *locker
	id      string
	lease   *chunks.Lease
	release func() // asks the request holding the lock to end
	done    chan struct{}
}

// headWait is how long a HEAD waits for a lock held by another request
// before it answers without one, with the offset the store holds: the
// holder, asked to let go, usually does within a second or two, and one
// that does not (its node died, or cannot reach the store) must not make
// the client wait for its lease to run out, nor fail it.
const headWait = 3 * time.Second

// Lock waits until the upload's lease is this lock's or ctx ends. While it
// waits it asks the holder to let go: through the locker on this node,
// through the store on another. A HEAD, which writes nothing, waits at
// most headWait and then goes on unlocked.
func (k *lock) Lock(ctx context.Context, requestRelease func()) error {
	wait := ctx
	if callOf(ctx).method == http.MethodHead {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, headWait)
		defer cancel()
	}
	asked := false
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		// The lease outlives ctx, which only bounds the wait.
		lease, _, err := k.l.chunks.Acquire(context.WithoutCancel(ctx), k.id, true)
		switch {
		case err == nil:
			k.lease, k.release, k.done = lease, requestRelease, make(chan struct{})
			k.l.mu.Lock()
			k.l.held[k.id] = k
			k.l.mu.Unlock()
			go k.watch()
			return nil
		case errors.Is(err, store.ErrNotFound):
			return handler.ErrNotFound
		case !errors.Is(err, store.ErrLeased):
			k.l.log.WarnContext(ctx, "tus: lock upload", "upload_key", k.id, "err", err)
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
				k.l.log.WarnContext(ctx, "tus: ask for upload lock", "upload_key", k.id, "err", err)
			}
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-wait.Done():
			t.Stop()
			if ctx.Err() == nil { // a HEAD: read without the lock
				return nil
			}
			return handler.ErrLockTimeout
		}
	}
}

// watch ends the request holding the lock when a request on another node
// asks for it, or when the lease is lost, so that it stops writing before
// another can begin.
func (k *lock) watch() {
	defer close(k.done)
	select {
	case <-k.lease.Wanted():
	case <-k.lease.Context().Done():
		if context.Cause(k.lease.Context()) == context.Canceled {
			return // Unlock
		}
		k.l.log.WarnContext(k.lease.Context(), "tus: upload lock lost; ending its request", "upload_key", k.id,
			"err", context.Cause(k.lease.Context()))
	}
	k.release()
}

// Unlock ends the lease.
func (k *lock) Unlock() error {
	if k.lease == nil {
		return nil // a HEAD that went on unlocked
	}
	k.lease.End()
	<-k.done
	k.l.mu.Lock()
	if k.l.held[k.id] == k {
		delete(k.l.held, k.id)
	}
	k.l.mu.Unlock()
	if err := k.l.chunks.Release(context.Background(), k.id, k.lease.Holder()); err != nil {
		k.l.log.WarnContext(k.lease.Context(), "tus: unlock upload", "upload_key", k.id, "err", err)
	}
	return nil
}
