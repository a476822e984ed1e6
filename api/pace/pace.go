// Package pace holds request bodies to a minimum rate, the same way for
// every dialect: while a handler waits for body bytes it must get rate ×
// window of them in every window of waiting, or the read fails with
// ErrSlow and the connection is not read again. Time the handler spends
// elsewhere (writing to the mirrors, waiting for a lease) does not count
// against the client. A Body can also be stopped at any moment, which
// returns a read in progress at once.
package pace

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// ErrSlow is the cause of a read failed because the body came too slowly.
// The error that carries it also wraps os.ErrDeadlineExceeded.
var ErrSlow = errors.New("the request body arrived too slowly")

// Body is a request body held to a pace.
type Body struct {
	r      io.ReadCloser
	rc     *http.ResponseController
	need   int64         // bytes due in every window; 0: no minimum
	window time.Duration // of waiting

	mu      sync.Mutex
	got     int64         // bytes in the current window
	left    time.Duration // waiting time left in it
	done    bool          // the body ended or failed: read it as it is
	stopped bool
}

// New holds r, the body of the request rc controls, to rate bytes a second
// over window; a rate of 0 or less holds it to none, and then the Body
// never sets a read deadline of its own but when it is stopped.
func New(r io.ReadCloser, rc *http.ResponseController, rate int64, window time.Duration) *Body {
	b := &Body{r: r, rc: rc, window: window, left: window}
	if rate > 0 && window > 0 {
		b.need = max(1, int64(float64(rate)*window.Seconds()))
	}
	return b
}

// Read reads the body; see the package comment.
func (b *Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return 0, io.EOF
	}
	if b.done || b.need == 0 {
		b.mu.Unlock()
		return b.r.Read(p)
	}
	start := time.Now()
	if err := b.rc.SetReadDeadline(start.Add(b.left)); err != nil {
		b.done = true // the connection cannot take deadlines: read as it is
		b.mu.Unlock()
		return b.r.Read(p)
	}
	b.mu.Unlock()

	n, err := b.r.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.left -= time.Since(start)
	late := b.left <= 0
	if b.got += int64(n); b.got >= b.need {
		b.got, b.left = 0, b.window
	}
	switch {
	case b.stopped && !late:
		// Stop set the deadline that ended this read; it stays. (A read
		// that failed on the pace's deadline cancels the request's
		// context, which may stop the body: that is still too slow.)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline stays, so the server does not wait for the rest
		// either, and closes the connection.
		b.done = true
		err = &SlowError{Need: b.need, Window: b.window, Err: err}
	case err != nil:
		// The body is done: lift the deadline, so the server's own
		// reads of the connection are not cut by it.
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// Close closes the body.
func (b *Body) Close() error { return b.r.Close() }

// Stop ends the body: a read in progress returns at once with the
// connection's deadline error, and every later read with io.EOF.
func (b *Body) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	b.rc.SetReadDeadline(time.Now())
}

// SlowError is the error of a read that failed because the body came too
// slowly. It wraps ErrSlow and the connection's deadline error.
type SlowError struct {
	Need   int64
	Window time.Duration
	Err    error
}

func (e *SlowError) Error() string {
	return fmt.Sprintf("%v: under %d bytes in %v", ErrSlow, e.Need, e.Window)
}

func (e *SlowError) Unwrap() []error { return []error{ErrSlow, e.Err} }
