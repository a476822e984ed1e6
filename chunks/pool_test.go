package chunks

import (
	"context"
	"errors"
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
	if _, err := p.reserve(context.Background()); err != nil {
		t.Fatalf("reserve after trim: %v", err)
	}
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

func TestPoolBoundsMemory(t *testing.T) {
	p := newPool(1<<16, perRequest, time.Hour)
	held, err := p.reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.reserve(ctx); err == nil {
		t.Fatal("a second request got pieces while the first held all there are")
	} else if e := new(Error); !errors.As(err, &e) || e.Kind != Unavailable {
		t.Fatalf("waiting for memory: %v, want an Unavailable error", err)
	}
	p.release(held)
	if _, err := p.reserve(context.Background()); err != nil {
		t.Fatalf("reserve after release: %v", err)
	}
}
