package chunks

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"
)

// perRequest is how many pieces a streaming request holds: one being read
// and inFlight being written.
const perRequest = 1 + inFlight

// keepFree is how long pieces no request holds stay mapped. A client
// sending chunks one after another finds its pieces still there, already
// faulted in; a node that falls idle gives the memory back soon after.
const keepFree = 5 * time.Second

// pool lends pieces: a request reserves all it needs at once, so that it
// can read one while others are written, and the memory for pieces is
// bounded per node, not per request. Pieces are anonymous memory maps,
// outside the Go heap, so the garbage collector's headroom never doubles
// them. Pieces given back are lent again while uploads keep coming, and
// unmapped once none has been given back for keep. At most max pieces are
// mapped at any time, held or free.
type pool struct {
	size int
	sem  *semaphore.Weighted
	keep time.Duration

	mu      sync.Mutex
	free    [][]byte // mapped, held by no request
	mapped  int      // pieces mapped or being mapped, held or free
	idle    *time.Timer
	closed  bool   // pieces given back are unmapped at once
	trimmed func() // for tests: called after each trim
}

func newPool(size, max int, keep time.Duration) *pool {
	return &pool{size: size, sem: semaphore.NewWeighted(int64(max)), keep: keep}
}

// reserve waits until a request's pieces are free and returns them; give
// them back with release.
func (p *pool) reserve(ctx context.Context) ([][]byte, error) {
	if err := p.sem.Acquire(ctx, perRequest); err != nil {
		return nil, unavailable("the upload was cut off while waiting for memory", err)
	}
	bufs := make([][]byte, perRequest)
	p.mu.Lock()
	k := copy(bufs, p.free[max(0, len(p.free)-perRequest):])
	p.free = p.free[:len(p.free)-k]
	p.mapped += perRequest - k
	p.mu.Unlock()
	for i := k; i < perRequest; i++ {
		b, err := syscall.Mmap(-1, 0, p.size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			p.mu.Lock()
			p.mapped -= perRequest - i
			p.mu.Unlock()
			p.release(bufs)
			return nil, unavailable("cannot get memory for the upload", fmt.Errorf("map a piece: %w", err))
		}
		bufs[i] = b
	}
	return bufs, nil
}

// release returns the pieces from reserve.
func (p *pool) release(bufs [][]byte) {
	p.mu.Lock()
	for _, b := range bufs {
		if b != nil {
			p.free = append(p.free, b[:p.size])
		}
	}
	switch {
	case p.closed:
		p.unmapFree()
	case p.idle == nil:
		p.idle = time.AfterFunc(p.keep, p.trim)
	default:
		p.idle.Reset(p.keep)
	}
	p.mu.Unlock()
	p.sem.Release(perRequest)
}

// trim unmaps every piece no request holds.
func (p *pool) trim() {
	p.mu.Lock()
	p.unmapFree()
	p.mu.Unlock()
	if p.trimmed != nil {
		p.trimmed()
	}
}

// close unmaps the free pieces, and every piece given back from now on.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.idle != nil {
		p.idle.Stop()
	}
	p.unmapFree()
}

// unmapFree unmaps the free pieces; p.mu is held, so that no reserve maps
// new pieces in place of ones not yet unmapped.
func (p *pool) unmapFree() {
	for _, b := range p.free {
		syscall.Munmap(b)
	}
	p.mapped -= len(p.free)
	p.free = nil
}
