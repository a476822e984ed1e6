package chunks

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
)

// hung wraps a mirror whose calls chosen by hangs never answer until
// released or cancelled, as a MinIO stopped with SIGSTOP.
type hung struct {
	mirrors.Mirror
	hangs   func(method string, n int) bool
	release chan struct{}

	mu    sync.Mutex
	calls map[string]int
}

func (h *hung) wait(ctx context.Context, method string) error {
	h.mu.Lock()
	n := h.calls[method]
	h.calls[method]++
	h.mu.Unlock()
	if !h.hangs(method, n) {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-h.release:
		return nil
	}
}

func (h *hung) Begin(ctx context.Context, key string) (mirrors.Upload, error) {
	if err := h.wait(ctx, "Begin"); err != nil {
		return mirrors.Upload{}, err
	}
	return h.Mirror.Begin(ctx, key)
}

func (h *hung) PutPart(ctx context.Context, up mirrors.Upload, prev mirrors.Part, r io.Reader, size int64) (mirrors.Part, error) {
	if err := h.wait(ctx, "PutPart"); err != nil {
		return mirrors.Part{}, err
	}
	return h.Mirror.PutPart(ctx, up, prev, r, size)
}

func (h *hung) Complete(ctx context.Context, up mirrors.Upload, last mirrors.Part) error {
	if err := h.wait(ctx, "Complete"); err != nil {
		return err
	}
	return h.Mirror.Complete(ctx, up, last)
}

// withHung puts mirror 3 of the config behind a hung wrapper.
func withHung(t *testing.T, c *Config, hangs func(string, int) bool) {
	t.Helper()
	var entries []mirrors.Entry
	for _, e := range c.Mirrors.All() {
		if e.ID == "3" {
			h := &hung{Mirror: e.Mirror, hangs: hangs, release: make(chan struct{}), calls: map[string]int{}}
			t.Cleanup(func() { close(h.release) })
			e.Mirror = h
		}
		entries = append(entries, e)
	}
	set, err := mirrors.NewSet(entries...)
	if err != nil {
		t.Fatal(err)
	}
	c.Mirrors = set
}

// within runs fn and fails the test if it has not returned after limit:
// it waited for a mirror that hangs until the test ends.
func within(t *testing.T, limit time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("still waiting after %v for a mirror that hangs", limit)
	}
}

// uploadWithin sends b in chunks of size bytes, as upload does, and
// returns the last result or the first error; it fails the test if that
// takes more than five minutes (it waited for a mirror that hangs).
func (e *env) uploadWithin(t *testing.T, b []byte, size int) (res Result, err error) {
	t.Helper()
	within(t, 5*time.Minute, func() {
		sess, ierr := e.svc.Issue(t.Context(), e.acct)
		if ierr != nil {
			err = ierr
			return
		}
		for off := 0; off < len(b) && err == nil; off += size {
			res, err = e.svc.Chunk(t.Context(), e.req(sess, b, off, min(off+size, len(b))))
		}
	})
	return res, err
}

// TestLaggardIsDropped hangs mirror 3 (of 3, quorum 2) at each step of an
// upload: the upload goes on without it, and the file's record names it
// missing, so the repairer fills it. A piece is given up once the quorum
// has it and mirror 3 falls lag_limit behind; Begin and Complete, which
// carry no bytes, after mirror_stall.
func TestLaggardIsDropped(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		step  string
		stall time.Duration
	}{{"Begin", 10 * time.Second}, {"PutPart", time.Hour}, {"Complete", 10 * time.Second}} {
		t.Run(c.step, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 3, func(cfg *Config) {
				cfg.WriteQuorum, cfg.LagLimit, cfg.MirrorStall = 2, 50*time.Millisecond, c.stall
				withHung(t, cfg, func(method string, n int) bool { return method == c.step && (n >= 1 || c.step != "PutPart") })
			})
			b := data(30*mib, 8)
			res, err := e.uploadWithin(t, b, 12*mib)
			if err != nil {
				t.Fatal(err)
			}
			e.holds(t, res.File, b, "1", "2")
			if fmt.Sprint(res.File.Mirrors) != "[1 2]" || fmt.Sprint(res.File.Missing) != "[3]" {
				t.Fatalf("record: mirrors %v, missing %v; want [1 2] and [3]", res.File.Mirrors, res.File.Missing)
			}
		})
	}
}

// TestStalledMirrorFails hangs one mirror of an upload that needs all of
// them: the request fails with a retryable error after mirror_stall
// instead of waiting for the mirror.
func TestStalledMirrorFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, func(c *Config) {
		c.LagLimit, c.MirrorStall = 50*time.Millisecond, 300*time.Millisecond
		withHung(t, c, func(method string, n int) bool { return method == "PutPart" && n >= 1 })
	})
	_, err := e.uploadWithin(t, data(12*mib, 9), 12*mib)
	ce, ok := AsError(err)
	if !ok || ce.Kind != Unavailable || !strings.Contains(err.Error(), "no progress for 300ms") {
		t.Fatalf("error %v; want a retryable one saying mirror 3 made no progress", err)
	}
}
