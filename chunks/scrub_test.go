package chunks

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
)

// TestScrub damages copies in three ways (a flipped byte, a cut, a loss)
// and scrubs: each is rewritten from a good copy, and good copies are left
// alone.
func TestScrub(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, nil)
	ctx := t.Context()
	b := data(7*mib+5, 60)
	res := e.upload(t, b, 12*mib)
	other := e.upload(t, data(1000, 61), 1000)
	key := res.File.ObjectKey

	flipped := bytes.Clone(b)
	flipped[12345] ^= 0x10
	if err := e.mem[0].Put(ctx, key, bytes.NewReader(flipped), int64(len(flipped))); err != nil {
		t.Fatal(err)
	}
	if err := e.mem[1].Put(ctx, key, bytes.NewReader(b[:len(b)-1]), int64(len(b)-1)); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.Scrub(ctx, 1); err != nil || n != 2 {
		t.Fatalf("Scrub: %d, %v; want the two bad copies rewritten", n, err)
	}
	e.holds(t, res.File, b, "1", "2", "3")
	e.holds(t, other.File, data(1000, 61), "1", "2", "3")

	e.mem[2].Delete(ctx, key)
	if n, err := e.svc.Scrub(ctx, 1); err != nil || n != 1 {
		t.Fatalf("Scrub of a lost copy: %d, %v", n, err)
	}
	e.holds(t, res.File, b, "1", "2", "3")
	if n, err := e.svc.Scrub(ctx, 1); err != nil || n != 0 {
		t.Fatalf("Scrub of good copies: %d, %v", n, err)
	}
}

// TestScrubShare: reading at a share of the time makes a scrub take about
// 1/share times as long as reading does.
func TestScrubShare(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, nil)
	slow := 20 * time.Millisecond
	e.faulty[0].Fail = func(method string, n int) error {
		if method == "Open" {
			time.Sleep(slow) // each copy takes this long to read
		}
		return nil
	}
	for i := range 5 {
		e.upload(t, data(100, uint64(70+i)), 100)
	}
	start := time.Now()
	if _, err := e.svc.Scrub(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	full := time.Since(start)
	start = time.Now()
	if _, err := e.svc.Scrub(t.Context(), 0.25); err != nil {
		t.Fatal(err)
	}
	if quarter := time.Since(start); quarter < 3*full/2 {
		t.Fatalf("a scrub at a quarter share took %v, one at the full share %v", quarter, full)
	}
}

// TestScrubWithdrawnMeanwhile takes a file down while the scrubber
// rewrites one of its copies: the rewritten copy must not outlive it.
func TestScrubWithdrawnMeanwhile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	ctx := t.Context()
	b := data(2000, 62)
	res := e.upload(t, b, len(b))
	bad := bytes.Clone(b)
	bad[10] ^= 1
	if err := e.mem[1].Put(ctx, res.File.ObjectKey, bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	var scrubbing atomic.Bool
	e.faulty[1].Fail = func(method string, n int) error {
		if scrubbing.Load() && method == "Put" {
			// The owner deletes the file while its copy is rewritten.
			if _, err := e.svc.Withdraw(ctx, res.File.Slug, store.StatusUser); err != nil {
				return fmt.Errorf("withdraw: %w", err)
			}
		}
		return nil
	}
	scrubbing.Store(true)
	if _, err := e.svc.Scrub(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for i, m := range e.mem {
		if keys := m.Keys(); len(keys) != 0 {
			t.Fatalf("mirror %d still holds %v of a withdrawn file", i+1, keys)
		}
	}
}
