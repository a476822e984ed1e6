package metrics

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/acestash/acestash/mirrors"
)

// Mirror returns mr timing every operation under the mirror id and counting
// its failures; it keeps exactly mr's optional capabilities
// (mirrors.Pinger, mirrors.Concurrent, mirrors.Lister). Open is timed until
// the object is open, not read.
func (m *Metrics) Mirror(id string, mr mirrors.Mirror) mirrors.Mirror {
	t := timedMirror{m: mr, id: id, metrics: m}
	p0, ping := mr.(mirrors.Pinger)
	c, conc := mr.(mirrors.Concurrent)
	l0, list := mr.(mirrors.Lister)
	p, l := timedPinger{t, p0}, timedLister{t, l0}
	switch {
	case ping && conc && list:
		return struct {
			timedMirror
			timedPinger
			mirrors.Concurrent
			timedLister
		}{t, p, c, l}
	case ping && conc:
		return struct {
			timedMirror
			timedPinger
			mirrors.Concurrent
		}{t, p, c}
	case ping && list:
		return struct {
			timedMirror
			timedPinger
			timedLister
		}{t, p, l}
	case conc && list:
		return struct {
			timedMirror
			mirrors.Concurrent
			timedLister
		}{t, c, l}
	case ping:
		return struct {
			timedMirror
			timedPinger
		}{t, p}
	case conc:
		return struct {
			timedMirror
			mirrors.Concurrent
		}{t, c}
	case list:
		return struct {
			timedMirror
			timedLister
		}{t, l}
	}
	return t
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

type timedPinger struct {
	t timedMirror
	p mirrors.Pinger
}

func (tp timedPinger) Ping(ctx context.Context) (err error) {
	defer func(s time.Time) { tp.t.observe("ping", s, err) }(time.Now())
	return tp.p.Ping(ctx)
}

type timedLister struct {
	t timedMirror
	l mirrors.Lister
}

func (tl timedLister) ListObjects(ctx context.Context, prefix string, fn func(string, mirrors.Info) error) (err error) {
	defer func(s time.Time) { tl.t.observe("list_objects", s, err) }(time.Now())
	return tl.l.ListObjects(ctx, prefix, fn)
}

func (tl timedLister) ListUploads(ctx context.Context, prefix string, fn func(mirrors.Upload, time.Time) error) (err error) {
	defer func(s time.Time) { tl.t.observe("list_uploads", s, err) }(time.Now())
	return tl.l.ListUploads(ctx, prefix, fn)
}
