package chunks

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestPoolLendsPiecesAgain(t *testing.T) {
	p := newPool(1<<16, perRequest, time.Hour)
	first, err := p.reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	was := map[*byte]bool{}
	for _, b := range first {
		was[&b[0]] = true
	}
	p.release(first)
	if len(p.free) != perRequest {
		t.Fatalf("%d pieces kept after release, want %d", len(p.free), perRequest)
	}
	again, err := p.reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range again {
		if len(b) != 1<<16 {
			t.Fatalf("piece %d: %d bytes, want %d", i, len(b), 1<<16)
		}
		if !was[&b[0]] {
			t.Errorf("piece %d was mapped anew; the pieces just given back were free", i)
		}
		b[len(b)-1] = 1 // still mapped and writable
	}
	p.release(again)
	p.trim()
	if len(p.free) != 0 {
		t.Fatalf("%d pieces still mapped after trim", len(p.free))
	}
	bufs, err := p.reserve(context.Background())
	if err != nil {
		t.Fatalf("reserve after trim: %v", err)
	}
	p.release(bufs)
	p.close()
}

func TestPoolUnmapsWhenIdle(t *testing.T) {
	p := newPool(1<<16, perRequest, time.Millisecond)
	trimmed := make(chan struct{}, 1)
	p.trimmed = func() {
		select {
		case trimmed <- struct{}{}:
		default:
		}
	}
	bufs, err := p.reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.release(bufs)
	select {
	case <-trimmed:
	case <-time.After(10 * time.Second):
		t.Fatal("free pieces were not unmapped once the pool fell idle")
	}
	p.mu.Lock()
	n := len(p.free)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d pieces still mapped after the pool fell idle", n)
	}
}

// TestPoolBoundsMemory: requests reserving and giving back pieces at once,
// with the idle timer unmapping free pieces all the while, never find more
// than the bound mapped, and never share a piece.
func TestPoolBoundsMemory(t *testing.T) {
	const max = 2 * perRequest
	p := newPool(1<<16, max, time.Nanosecond)
	var mu sync.Mutex
	held := map[*byte]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				bufs, err := p.reserve(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				p.mu.Lock()
				n := p.mapped
				p.mu.Unlock()
				if n > max {
					t.Errorf("%d pieces mapped; the bound is %d", n, max)
				}
				mu.Lock()
				for _, b := range bufs {
					if held[&b[0]] {
						t.Errorf("piece %p lent to two requests at once", &b[0])
					}
					held[&b[0]] = true
				}
				mu.Unlock()
				for _, b := range bufs {
					b[0], b[len(b)-1] = 1, 1 // mapped and writable
				}
				mu.Lock()
				for _, b := range bufs {
					delete(held, &b[0])
				}
				mu.Unlock()
				p.release(bufs)
			}
		})
	}
	wg.Wait()
	p.close()
	p.mu.Lock()
	n, free := p.mapped, len(p.free)
	p.mu.Unlock()
	if n != 0 || free != 0 {
		t.Fatalf("after close: %d pieces mapped, %d free; want none", n, free)
	}
}
