package metrics

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/acestash/acestash/mirrors"
)

// Mirror returns mr timing every operation under the mirror id and counting
// its failures. It is a mirrors.Wrapper: the optional capabilities of mr
// (mirrors.Pinger, mirrors.Concurrent, mirrors.Lister) are found through it
// with mirrors.As, and Ping and the listings are timed too. Open is timed
// until the object is open, not read.
func (m *Metrics) Mirror(id string, mr mirrors.Mirror) mirrors.Mirror {
	return timedMirror{m: mr, id: id, metrics: m}
}

type timedMirror struct {
	m       mirrors.Mirror
	id      string
	metrics *Metrics
}

// observe records one operation; a missing object or a cancelled request
// is not the mirror's failure.
func (t timedMirror) observe(op string, start time.Time, err error) {
	t.metrics.mirrorOps.WithLabelValues(t.id, op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, mirrors.ErrNotFound) && !errors.Is(err, context.Canceled) {
		t.metrics.mirrorErrs.WithLabelValues(t.id, op).Inc()
	}
}

func (t timedMirror) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	defer func(s time.Time) { t.observe("put", s, err) }(time.Now())
	return t.m.Put(ctx, key, r, size)
}

func (t timedMirror) Begin(ctx context.Context, key string) (_ mirrors.Upload, err error) {
	defer func(s time.Time) { t.observe("begin", s, err) }(time.Now())
	return t.m.Begin(ctx, key)
}

func (t timedMirror) PutPart(ctx context.Context, up mirrors.Upload, prev mirrors.Part, r io.Reader, size int64) (_ mirrors.Part, err error) {
	defer func(s time.Time) { t.observe("put_part", s, err) }(time.Now())
	return t.m.PutPart(ctx, up, prev, r, size)
}

func (t timedMirror) Complete(ctx context.Context, up mirrors.Upload, last mirrors.Part) (err error) {
	defer func(s time.Time) { t.observe("complete", s, err) }(time.Now())
	return t.m.Complete(ctx, up, last)
}

func (t timedMirror) Abort(ctx context.Context, up mirrors.Upload) (err error) {
	defer func(s time.Time) { t.observe("abort", s, err) }(time.Now())
	return t.m.Abort(ctx, up)
}

func (t timedMirror) Open(ctx context.Context, key string, off, length int64) (_ io.ReadCloser, err error) {
	defer func(s time.Time) { t.observe("open", s, err) }(time.Now())
	return t.m.Open(ctx, key, off, length)
}

func (t timedMirror) Stat(ctx context.Context, key string) (_ mirrors.Info, err error) {
	defer func(s time.Time) { t.observe("stat", s, err) }(time.Now())
	return t.m.Stat(ctx, key)
}

func (t timedMirror) Delete(ctx context.Context, key string) (err error) {
	defer func(s time.Time) { t.observe("delete", s, err) }(time.Now())
	return t.m.Delete(ctx, key)
}

// Unwrap returns the mirror timed.
func (t timedMirror) Unwrap() mirrors.Mirror { return t.m }

// Ping is the wrapped mirror's, timed; mirrors.As gives it only when the
// wrapped mirror pings.
func (t timedMirror) Ping(ctx context.Context) (err error) {
	p, ok := mirrors.As[mirrors.Pinger](t.m)
	if !ok {
		return errors.ErrUnsupported
	}
	defer func(s time.Time) { t.observe("ping", s, err) }(time.Now())
	return p.Ping(ctx)
}

// ListObjects and ListUploads are the wrapped mirror's, timed; mirrors.As
// gives them only when the wrapped mirror lists.
func (t timedMirror) ListObjects(ctx context.Context, prefix string, fn func(string, mirrors.Info) error) (err error) {
	l, ok := mirrors.As[mirrors.Lister](t.m)
	if !ok {
		return errors.ErrUnsupported
	}
	defer func(s time.Time) { t.observe("list_objects", s, err) }(time.Now())
	return l.ListObjects(ctx, prefix, fn)
}

func (t timedMirror) ListUploads(ctx context.Context, prefix string, fn func(mirrors.Upload, time.Time) error) (err error) {
	l, ok := mirrors.As[mirrors.Lister](t.m)
	if !ok {
		return errors.ErrUnsupported
	}
	defer func(s time.Time) { t.observe("list_uploads", s, err) }(time.Now())
	return l.ListUploads(ctx, prefix, fn)
}
