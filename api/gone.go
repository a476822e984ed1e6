package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
)

// A client that goes away is not a storage failure. net/http ends a
// request's context when a read on its connection fails or sees EOF,
// and EOF is also what a client causes that sent its whole request and
// then shut its side for writing (shutdown(SHUT_WR), as `nc -N` does):
// it still waits for its answer, and nginx gives it one. So a request
// runs under a context of its own, which ends when the client is gone
// for certain: a read of the body failed after the connection ended, a
// write to the client failed, the server's base context ended (the
// shutdown grace is over), or the handler returned. A client that closes
// its connection after sending everything is noticed at the first write
// that fails; until then its request goes on, as one whose client waits.

// errClientGone is the cause of a request context that ended because its
// client went away.
var errClientGone = errors.New("client went away")

// baseKey holds a server's base context in the contexts it makes.
type baseKey struct{}

// BaseContext returns ctx for an http.Server's BaseContext: requests end
// when it does, whatever their connections do.
func BaseContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, baseKey{}, ctx)
}

// detach returns the context r runs under, its body counted and watched,
// and a function to call when the handler returns.
func detach(r *http.Request) (context.Context, *countingBody, func()) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	body := &countingBody{ReadCloser: r.Body, conn: r.Context(), cancel: cancel}
	stop := func() bool { return false }
	if base, ok := r.Context().Value(baseKey{}).(context.Context); ok {
		stop = context.AfterFunc(base, func() { cancel(context.Cause(base)) })
	}
	return ctx, body, func() {
		stop()
		cancel(nil)
	}
}

// gone reports whether the request's client went away.
func gone(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errClientGone)
}

// countingBody counts the bytes a handler reads from a request body. A
// read that fails once the connection has ended (net/http ends conn
// before it returns the error) means the client is gone.
type countingBody struct {
	io.ReadCloser
	n      atomic.Int64
	conn   context.Context
	cancel context.CancelCauseFunc
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if err != nil && err != io.EOF && !errors.Is(err, os.ErrDeadlineExceeded) && b.conn.Err() != nil {
		b.cancel(errClientGone) // a deadline is the server's own doing (slow bodies, tus)
	}
	return n, err
}

// countingWriter counts the body bytes written, also those a download
// hands to the connection with sendfile (io.ReaderFrom); a write that
// fails means the client is gone.
type countingWriter struct {
	http.ResponseWriter
	cancel context.CancelCauseFunc
	n      int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	if err != nil {
		w.cancel(errClientGone)
	}
	return n, err
}

func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(w.ResponseWriter, r) // the server's writer does sendfile
	w.n += n
	var op *net.OpError // a failed read is the source's, not the client's
	if errors.As(err, &op) && op.Op == "write" {
		w.cancel(errClientGone)
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
