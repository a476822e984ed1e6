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
		if _, ok := w.(mirrors.Pinger); !ok {
			t.Fatal("the wrapped fsmirror lost Ping")
		}
		return w
	})
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
