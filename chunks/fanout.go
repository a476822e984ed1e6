package chunks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acestash/acestash/mirrors"
)

// inFlight is how many pieces of one request a mirror may be storing at
// once, where it can (mirrors.Concurrent): a single stream rarely keeps a
// storage server's cores busy.
const inFlight = 2

// A fanout hands the pieces of one request to every live mirror of its
// session. Each mirror has a lane that stores the pieces in order, several
// at a time where the mirror allows, so a fast mirror is not held back by
// a slow one by more than the pieces in memory. A mirror that fails, that
// falls too far behind the quorum or stalls (see laggard.go) is dropped;
// when too few are left for the quorum, the fanout cancels ctx.
type fanout struct {
	w       *write
	parent  context.Context // the request's
	ctx     context.Context
	cancel  context.CancelFunc
	lanes   []*lane
	need    int           // lanes the quorum needs
	start   time.Time     // when the fanout began
	stop    chan struct{} // closed to end watch
	watched chan struct{} // closed when watch has ended

	mu       sync.Mutex
	failures map[string]error
	lost     int // lanes that failed
}

// piece is a buffer of bytes handed to every lane; the last lane done with
// it gives the buffer back.
type piece struct {
	b    []byte
	buf  []byte // all of the buffer b is in
	left atomic.Int32
	free chan<- []byte
}

func (p *piece) done() {
	if p.left.Add(-1) == 0 {
		p.free <- p.buf
	}
}

// lane stores one mirror's pieces in order.
type lane struct {
	id      string
	m       mirrors.Mirror
	ctx     context.Context // the fanout's, ended when the lane is dropped
	cancel  context.CancelCauseFunc
	pulse   pulse
	stored  atomic.Int64       // pieces stored
	conc    mirrors.Concurrent // nil: one piece at a time
	up      mirrors.Upload
	timeout time.Duration // for each PutPart
	in      chan *piece
	done    chan struct{}

	prev mirrors.Part // after the last piece handed to the mirror

	mu      sync.Mutex
	settled []mirrors.Part // results of the pieces since prev was last certain
	err     error
}

// newFanout begins the session's uploads where they have not begun, and
// starts a lane for every live mirror.
func (w *write) newFanout(ctx context.Context) (*fanout, error) {
	if w.sess.Uploads == nil {
		if err := w.s.begin(ctx, w.sess); err != nil {
			return nil, err
		}
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	f := &fanout{w: w, parent: parent, ctx: ctx, cancel: cancel, failures: map[string]error{},
		need: w.s.quorum(len(w.sess.Mirrors)), start: time.Now(), stop: make(chan struct{}), watched: make(chan struct{})}
	for _, id := range live(w.sess) {
		e, ok := w.s.cfg.Mirrors.Get(id)
		if !ok {
			f.failures[id] = fmt.Errorf("mirror %s is no longer configured", id)
			continue
		}
		l := &lane{id: id, m: e.Mirror, up: w.sess.Uploads[id], timeout: w.s.cfg.MirrorTimeout,
			in: make(chan *piece, inFlight), done: make(chan struct{}), prev: w.parts[id]}
		l.conc, _ = mirrors.As[mirrors.Concurrent](e.Mirror)
		l.ctx, l.cancel = context.WithCancelCause(ctx)
		f.lanes = append(f.lanes, l)
		go l.run(f)
	}
	if len(f.lanes) == 0 {
		cancel()
		if err := w.s.drop(parent, w.sess, f.failures); err != nil {
			return nil, err
		}
		return nil, errors.New("chunks: no mirror left to write to")
	}
	if w.s.watching() {
		go f.watch()
	} else {
		close(f.watched)
	}
	return f, nil
}

// watch drops the lanes that fall behind the quorum or stall, until
// close stops it.
func (f *fanout) watch() {
	defer close(f.watched)
	t := time.NewTicker(f.w.s.tick())
	defer t.Stop()
	var at []time.Time // at[k]: when the quorum had stored k+1 pieces
	for {
		select {
		case <-f.stop:
			return
		case now := <-t.C:
			at = f.check(now, at)
		}
	}
}

// check looks for laggards and stalls at now; at is as in watch.
func (f *fanout) check(now time.Time, at []time.Time) []time.Time {
	var stored []int64
	for _, l := range f.lanes {
		if !l.failed() {
			stored = append(stored, l.stored.Load())
		}
	}
	if f.need > 0 && len(stored) >= f.need {
		slices.SortFunc(stored, func(a, b int64) int { return cmp.Compare(b, a) })
		for q := stored[f.need-1]; int64(len(at)) < q; {
			at = append(at, now)
		}
	}
	stall := f.w.s.cfg.MirrorStall
	for _, l := range f.lanes {
		if l.failed() {
			continue
		}
		if l.pulse.stalled(now, stall) {
			f.drop(l, StallError{stall})
			continue
		}
		k := l.stored.Load()
		if f.w.s.cfg.LagLimit <= 0 || k >= int64(len(at)) || !f.spare() {
			continue
		}
		before := f.start
		if k > 0 {
			before = at[k-1]
		}
		// Behind and not moving: a lane that is slow but still taking
		// bytes is left alone, since on a loaded machine slow is not hung.
		wait := f.w.s.lagWait(at[k].Sub(before))
		if behind := now.Sub(at[k]); behind > wait && l.pulse.idle(now) > wait {
			f.drop(l, laggedError{behind})
		}
	}
	return at
}

// spare reports whether the quorum holds without one more lane.
func (f *fanout) spare() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.lanes)-f.lost-1 >= f.need
}

// drop fails the lane for err and cancels what it is storing.
func (f *fanout) drop(l *lane, err error) {
	f.fail(l, err)
	l.cancel(err)
}

// send hands p to every lane, waiting while a lane has its fill.
func (f *fanout) send(b, buf []byte, free chan<- []byte) error {
	p := &piece{b: b, buf: buf, free: free}
	p.left.Store(int32(len(f.lanes)))
	for _, l := range f.lanes {
		if l.failed() {
			p.done()
			continue
		}
		select {
		case l.in <- p:
		case <-f.ctx.Done():
			return f.ctx.Err() // the buffer goes back with the reservation
		}
	}
	return nil
}

// close waits for every lane to store what it was given, records each
// mirror's last Part or failure, and reports whether the quorum holds.
func (f *fanout) close() error {
	for _, l := range f.lanes {
		close(l.in)
	}
	for _, l := range f.lanes {
		<-l.done
	}
	close(f.stop)
	<-f.watched
	for _, l := range f.lanes {
		l.cancel(nil)
		if l.err != nil {
			f.failures[l.id] = l.err
			delete(f.w.parts, l.id)
		} else {
			f.w.parts[l.id] = l.prev
		}
	}
	f.cancel()
	return f.w.s.drop(f.parent, f.w.sess, f.failures)
}

// fail records a lane's failure and stops the fanout when the quorum can
// no longer be met.
func (f *fanout) fail(l *lane, err error) {
	l.mu.Lock()
	first := l.err == nil
	if first {
		l.err = fmt.Errorf("write piece: %w", err)
	}
	l.mu.Unlock()
	if !first {
		return
	}
	f.mu.Lock()
	f.lost++
	lost := len(f.lanes)-f.lost < f.need
	f.mu.Unlock()
	if lost {
		f.cancel()
	}
}

func (l *lane) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err != nil
}

// run stores the lane's pieces until its channel closes.
func (l *lane) run(f *fanout) {
	defer close(l.done)
	var wg sync.WaitGroup
	slots := make(chan struct{}, inFlight)
	for p := range l.in {
		if l.failed() {
			p.done()
			continue
		}
		size := int64(len(p.b))
		l.pulse.start()
		if l.conc != nil {
			if next, ok := l.conc.Next(l.prev, size); ok {
				slots <- struct{}{}
				after := l.prev
				l.mu.Lock()
				i := len(l.settled)
				l.settled = append(l.settled, mirrors.Part{})
				l.mu.Unlock()
				wg.Go(func() {
					defer func() { <-slots; p.done(); l.pulse.end() }()
					part, err := l.put(after, p.b)
					if err == nil && (part.N != next.N || part.Size != next.Size) {
						err = fmt.Errorf("stored Part %+v, expected %+v", part, next)
					}
					if err != nil {
						f.fail(l, err)
						return
					}
					l.mu.Lock()
					l.settled[i] = part
					l.mu.Unlock()
					l.stored.Add(1)
				})
				l.prev = next
				continue
			}
		}
		wg.Wait()
		l.settle()
		if l.failed() {
			p.done()
			l.pulse.end()
			continue
		}
		part, err := l.put(l.prev, p.b)
		p.done()
		l.pulse.end()
		if err != nil {
			f.fail(l, err)
			continue
		}
		l.prev = part
		l.stored.Add(1)
	}
	wg.Wait()
	l.settle()
}

// settle makes prev certain once every piece before it is stored.
func (l *lane) settle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.settled) > 0 && l.err == nil {
		l.prev = l.conc.Settle(l.settled)
	}
	l.settled = nil
}

// put stores b after prev, trying twice.
func (l *lane) put(prev mirrors.Part, b []byte) (mirrors.Part, error) {
	ctx := l.ctx
	var err error
	for range 2 {
		var part mirrors.Part
		actx, cancel := context.WithTimeout(ctx, l.timeout)
		r := newPieceReader(b, &l.pulse)
		part, err = l.m.PutPart(actx, l.up, prev, r, int64(len(b)))
		r.revoke()
		cancel()
		if err == nil {
			return part, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return mirrors.Part{}, err
}

// pieceReader reads a piece for one mirror call. An HTTP client may go on
// reading a request body after the call has returned, and once its request
// ends a piece is filled by another upload or unmapped, so the piece is
// lent only until revoke: it waits for a read in progress and makes every
// later one fail.
type pieceReader struct {
	mu      sync.Mutex
	b       []byte
	off     int
	revoked bool
	pulse   *pulse // told of every stretch read; may be nil
}

func newPieceReader(b []byte, p *pulse) *pieceReader { return &pieceReader{b: b, pulse: p} }

// errRevoked is a read of a piece whose call has returned.
var errRevoked = errors.New("chunks: the piece was read after its call returned")

func (r *pieceReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked {
		return 0, errRevoked
	}
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	r.pulse.beat()
	return n, nil
}

// writeStretch is how much WriteTo hands w at a time: large enough to
// cost nothing, small enough to show a mirror's progress.
const writeStretch = 1 << 20

// WriteTo writes the rest of the piece in stretches of writeStretch.
func (r *pieceReader) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked {
		return 0, errRevoked
	}
	var total int64
	for r.off < len(r.b) {
		n, err := w.Write(r.b[r.off:min(r.off+writeStretch, len(r.b))])
		r.off += n
		total += int64(n)
		r.pulse.beat()
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Seek lets a client retry the call from the start.
func (r *pieceReader) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pos := offset
	switch whence {
	case io.SeekCurrent:
		pos += int64(r.off)
	case io.SeekEnd:
		pos += int64(len(r.b))
	}
	if pos < 0 || pos > int64(len(r.b)) {
		return 0, fmt.Errorf("chunks: seek to %d in a piece of %d bytes", pos, len(r.b))
	}
	r.off = int(pos)
	return pos, nil
}

// Len returns the bytes not yet read.
func (r *pieceReader) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.b) - r.off
}

func (r *pieceReader) revoke() {
	r.mu.Lock()
	r.revoked = true
	r.mu.Unlock()
}
