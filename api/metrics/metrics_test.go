package metrics

import (
	"path/filepath"
	"testing"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/fsmirror"
	"github.com/acestash/acestash/mirrors/memmirror"
	"github.com/acestash/acestash/mirrors/mirrortest"
	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/boltstore"
	"github.com/acestash/acestash/store/storetest"
)

// The timing wrappers must be invisible: the wrapped mirror and store pass
// the same conformance suites, optional capabilities included.

func TestMirrorConformance(t *testing.T) {
	mirrortest.Run(t, func(t *testing.T) mirrors.Mirror { return New().Mirror("1", memmirror.New()) })
}

func TestFSMirrorConformance(t *testing.T) {
	mirrortest.Run(t, func(t *testing.T) mirrors.Mirror {
		m, err := fsmirror.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		w := New().Mirror("1", m)
		if _, ok := mirrors.As[mirrors.Pinger](w); !ok {
			t.Fatal("the wrapped fsmirror lost Ping")
		}
		if _, ok := mirrors.As[mirrors.Lister](w); !ok {
			t.Fatal("the wrapped fsmirror lost its listing")
		}
		return w
	})
}

// TestCapabilities: the wrapper has exactly the optional interfaces of
// what it wraps (an fsmirror is not Concurrent).
func TestCapabilities(t *testing.T) {
	fs, err := fsmirror.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []mirrors.Mirror{memmirror.New(), &mirrortest.Faulty{Mirror: memmirror.New()}, fs, &mirrortest.Faulty{Mirror: fs}} {
		w := New().Mirror("1", m)
		_, p0 := mirrors.As[mirrors.Pinger](m)
		_, c0 := mirrors.As[mirrors.Concurrent](m)
		_, l0 := mirrors.As[mirrors.Lister](m)
		_, p1 := mirrors.As[mirrors.Pinger](w)
		_, c1 := mirrors.As[mirrors.Concurrent](w)
		_, l1 := mirrors.As[mirrors.Lister](w)
		if p0 != p1 || c0 != c1 || l0 != l1 {
			t.Fatalf("%T: Pinger, Concurrent, Lister %v %v %v; wrapped %v %v %v", m, p0, c0, l0, p1, c1, l1)
		}
	}
}

func TestStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock store.Clock) store.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "acestash.db"), clock)
		if err != nil {
			t.Fatal(err)
		}
		return New().Store(s)
	})
}
