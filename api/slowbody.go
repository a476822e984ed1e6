package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
)

// Slow bodies: a client that sends its body slower than MinBodyRate would
// hold a connection, and for an upload its lease, as long as it liked. While
// a handler waits for body bytes it must get MinBodyRate × BodyWindow of
// them in every BodyWindow of waiting; otherwise the read fails and the
// request is cut. Time the handler spends elsewhere (writing to mirrors,
// waiting for a lease) does not count against the client.

// isTus reports whether the request is for the tus endpoint, whose handler
// sets read deadlines of its own (a timeout per read, and stopping a read
// when its lock is wanted) that these must not undo; it keeps the same
// minimum rate its own way.
func isTus(c echo.Context) bool {
	return isTusRoute(c.Path())
}

// errSlowBody is the read error of a body cut for being too slow.
var errSlowBody = errors.New("the request body arrived too slowly")

func (s *Server) slowBodies(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.cfg.MinBodyRate <= 0 || r.Body == nil || r.Body == http.NoBody || isTus(c) {
			return next(c)
		}
		window := s.cfg.BodyWindow
		r.Body = &rateBody{
			ReadCloser: r.Body, rc: http.NewResponseController(c.Response()),
			need: max(1, int64(float64(s.cfg.MinBodyRate)*window.Seconds())), window: window, left: window,
		}
		return next(c)
	}
}

// rateBody is a request body that must bring need bytes in every window
// of time spent waiting in Read.
type rateBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	need   int64
	window time.Duration
	got    int64         // bytes in the current window
	left   time.Duration // waiting time left in it
	done   bool
}

func (b *rateBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	start := time.Now()
	if err := b.rc.SetReadDeadline(start.Add(b.left)); err != nil {
		b.done = true // the connection cannot take deadlines: read as it is
		return b.ReadCloser.Read(p)
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= time.Since(start)
	if b.got += int64(n); b.got >= b.need {
		b.got, b.left = 0, b.window
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline stays, so the server does not wait for the rest
		// either, and closes the connection.
		b.done = true
		err = fmt.Errorf("%w: under %d bytes in %v: %w", errSlowBody, b.need, b.window, err)
	case err != nil:
		// The body is done: lift the deadline, so the server's own
		// reads of the connection are not cut by it.
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
