package mirrors_test

import (
	"context"
	"testing"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/fsmirror"
	"github.com/acestash/acestash/mirrors/memmirror"
)

// plain wraps a mirror and sees none of its optional calls.
type plain struct{ mirrors.Mirror }

func (p plain) Unwrap() mirrors.Mirror { return p.Mirror }

// seeing wraps a mirror and implements Pinger and Concurrent, counting
// the pings it passes on.
type seeing struct {
	mirrors.Mirror
	pings *int
}

func (s seeing) Unwrap() mirrors.Mirror { return s.Mirror }

func (s seeing) Ping(ctx context.Context) error {
	*s.pings++
	if inner, ok := mirrors.As[mirrors.Pinger](s.Mirror); ok {
		return inner.Ping(ctx)
	}
	return nil
}

func (s seeing) Next(prev mirrors.Part, size int64) (mirrors.Part, bool) { return prev, false }
func (s seeing) Settle(parts []mirrors.Part) mirrors.Part                { return parts[len(parts)-1] }

// TestAs: a capability is found through any number of wrappers when the
// wrapped mirror has it, and only then; the call goes through the
// outermost wrapper that implements it.
func TestAs(t *testing.T) {
	fs, err := fsmirror.New(t.TempDir()) // Pinger and Lister, not Concurrent
	if err != nil {
		t.Fatal(err)
	}
	var pings int
	m := plain{seeing{plain{seeing{fs, &pings}}, &pings}}
	if _, ok := mirrors.As[mirrors.Lister](m); !ok {
		t.Error("Lister lost through the wrappers")
	}
	if _, ok := mirrors.As[mirrors.Concurrent](m); ok {
		t.Error("wrappers gave Concurrent to a mirror without it")
	}
	p, ok := mirrors.As[mirrors.Pinger](m)
	if !ok {
		t.Fatal("Pinger of the wrapped mirror not found")
	}
	if err := p.Ping(t.Context()); err != nil || pings != 2 {
		t.Errorf("Ping through two wrappers that see it: %v, %d pings seen, want 2", err, pings)
	}
	mem := memmirror.New()
	if c, ok := mirrors.As[mirrors.Concurrent](plain{mem}); !ok || c != mirrors.Concurrent(mem) {
		t.Errorf("Concurrent through a plain wrapper: %v %T, want the memmirror's", ok, c)
	}
	if _, ok := mirrors.As[mirrors.Lister](mirrors.Mirror(fs)); !ok {
		t.Error("an unwrapped fsmirror is a Lister")
	}
}
