package mirrortest

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/acestash/acestash/mirrors"
)

// Faulty wraps a Mirror and makes the calls Fail chooses fail, so the code
// above mirrors can be tested against a mirror going down at any step.
type Faulty struct {
	mirrors.Mirror
	// Fail, when set, is asked before each call with the method's name and
	// how many calls of it came before; a non-nil error is returned
	// instead of making the call.
	Fail func(method string, n int) error
	// Reads, when set, is given the reader of the n-th Open (from 0) and
	// returns the one the caller gets: one that stalls, breaks off or
	// comes up short.
	Reads func(ctx context.Context, n int, rc io.ReadCloser) io.ReadCloser

	mu    sync.Mutex
	calls map[string]int
}

var (
	_ mirrors.Wrapper = (*Faulty)(nil)
	_ mirrors.Pinger  = (*Faulty)(nil)
	_ mirrors.Lister  = (*Faulty)(nil)
)

// Unwrap returns the mirror that faults are injected into; its optional
// capabilities are found through the Faulty with mirrors.As.
func (f *Faulty) Unwrap() mirrors.Mirror { return f.Mirror }

func (f *Faulty) fault(method string) error {
	_, err := f.count(method)
	return err
}

// count counts a call of method and returns how many came before and the
// fault chosen for it.
func (f *Faulty) count(method string) (int, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	n := f.calls[method]
	f.calls[method]++
	fail := f.Fail
	f.mu.Unlock()
	if fail == nil {
		return n, nil
	}
	return n, fail(method, n)
}

func (f *Faulty) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := f.fault("Put"); err != nil {
		return err
	}
	return f.Mirror.Put(ctx, key, r, size)
}

func (f *Faulty) Begin(ctx context.Context, key string) (mirrors.Upload, error) {
	if err := f.fault("Begin"); err != nil {
		return mirrors.Upload{}, err
	}
	return f.Mirror.Begin(ctx, key)
}

func (f *Faulty) PutPart(ctx context.Context, up mirrors.Upload, prev mirrors.Part, r io.Reader, size int64) (mirrors.Part, error) {
	if err := f.fault("PutPart"); err != nil {
		return mirrors.Part{}, err
	}
	return f.Mirror.PutPart(ctx, up, prev, r, size)
}

func (f *Faulty) Complete(ctx context.Context, up mirrors.Upload, last mirrors.Part) error {
	if err := f.fault("Complete"); err != nil {
		return err
	}
	return f.Mirror.Complete(ctx, up, last)
}

func (f *Faulty) Abort(ctx context.Context, up mirrors.Upload) error {
	if err := f.fault("Abort"); err != nil {
		return err
	}
	return f.Mirror.Abort(ctx, up)
}

func (f *Faulty) Open(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	n, err := f.count("Open")
	if err != nil {
		return nil, err
	}
	rc, err := f.Mirror.Open(ctx, key, off, length)
	if err != nil || f.Reads == nil {
		return rc, err
	}
	return f.Reads(ctx, n, rc), nil
}

func (f *Faulty) Stat(ctx context.Context, key string) (mirrors.Info, error) {
	if err := f.fault("Stat"); err != nil {
		return mirrors.Info{}, err
	}
	return f.Mirror.Stat(ctx, key)
}

func (f *Faulty) Delete(ctx context.Context, key string) error {
	if err := f.fault("Delete"); err != nil {
		return err
	}
	return f.Mirror.Delete(ctx, key)
}

// Ping fails like the wrapped mirror's Ping, or with the fault chosen for
// "Ping".
func (f *Faulty) Ping(ctx context.Context) error {
	if err := f.fault("Ping"); err != nil {
		return err
	}
	if p, ok := mirrors.As[mirrors.Pinger](f.Mirror); ok {
		return p.Ping(ctx)
	}
	return nil
}

// ListObjects is the wrapped mirror's, with the fault chosen for
// "ListObjects".
func (f *Faulty) ListObjects(ctx context.Context, prefix string, fn func(key string, info mirrors.Info) error) error {
	if err := f.fault("ListObjects"); err != nil {
		return err
	}
	l, ok := mirrors.As[mirrors.Lister](f.Mirror)
	if !ok {
		return fmt.Errorf("mirrortest: %T cannot list", f.Mirror)
	}
	return l.ListObjects(ctx, prefix, fn)
}

// ListUploads is the wrapped mirror's, with the fault chosen for
// "ListUploads".
func (f *Faulty) ListUploads(ctx context.Context, prefix string, fn func(up mirrors.Upload, began time.Time) error) error {
	if err := f.fault("ListUploads"); err != nil {
		return err
	}
	l, ok := mirrors.As[mirrors.Lister](f.Mirror)
	if !ok {
		return fmt.Errorf("mirrortest: %T cannot list", f.Mirror)
	}
	return l.ListUploads(ctx, prefix, fn)
}
