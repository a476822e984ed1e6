package chunks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// copyBuffer is the buffer a download of more than smallCopy bytes copies
// through when the mirror's reader cannot copy by itself: large, so a
// download costs few system calls.
const copyBuffer = 256 << 10

// firstBytes is what a mirror's first read fills before the race is
// settled: a small file whole, so that it goes to the client in one write
// (each write wakes the client up, and costs both sides a system call),
// and little enough of a large one to leave the rest of a local file to
// sendfile. Smaller downloads copy the rest through the same buffer.
const (
	firstBytes = 64 << 10
	smallCopy  = 128 << 10
)

// keptHeads is how many first-read buffers a node keeps for the next
// downloads; a sync.Pool would lose them at every garbage collection, and
// small downloads would allocate (and zero) one each. 32 (2 MiB) covers
// 32 downloads at once and keeps what a node holds between bursts small.
const keptHeads = 32

// errStalled says a mirror brought no byte for the stall limit.
var errStalled = errors.New("no byte came within the stall limit")

// Open returns n bytes of the file from offset off, once the first of them
// are in hand: a caller that has sent nothing yet never sees a mirror fail.
//
// The mirrors holding the file are asked in read order (healthy ones
// first, then those that let a read down lately). When the mirror asked
// has not brought its first byte in time (the hedge_after setting, or as
// speeds.patience says from its recent first-byte times), the next is
// asked as well; the first to answer serves the read and the others are
// cancelled and closed. A mirror that fails is replaced at once, and
// one that brings nothing for the stall limit is given up, before or after
// its first byte: the read goes on from the same offset on another mirror,
// so the reader yields the n bytes without a gap. Close it.
func (s *Service) Open(ctx context.Context, f store.File, off, n int64) (io.ReadCloser, error) {
	if n <= 0 { // nothing to read: no mirror is asked (an empty file, an empty range)
		return io.NopCloser(strings.NewReader("")), nil
	}
	d := &download{s: s, ctx: ctx, f: f, pos: off, end: off + n}
	if err := d.next(nil); err != nil {
		return nil, err
	}
	return d, nil
}

// attempt is one mirror's read of a range.
type attempt struct {
	speeds *speeds
	state  atomic.Int32 // waiting, overdue or answered
	id     string
	rc     io.ReadCloser
	buf    *[]byte // lent; holds the first bytes
	cancel context.CancelFunc
	watch  *time.Timer // cancels the read when it stalls
	stall  time.Duration
	err    error         // why the attempt ended without a first byte
	k      int           // first bytes in buf
	asked  time.Time     // when the mirror was asked
	took   time.Duration // until the first bytes came
	// spliced: the reader was spliced already (and stopped); it is read
	// through a buffer from then on.
	spliced bool
	// busy: the next mirror was asked while this one served other reads;
	// losing that race is no mark against it.
	busy bool
}

// read reads from the mirror, giving it the stall limit to bring a byte.
func (a *attempt) read(p []byte) (int, error) {
	a.watch.Reset(a.stall)
	n, err := a.rc.Read(p)
	if !a.watch.Stop() {
		// The watch fired: the request was cancelled under the read.
		return n, fmt.Errorf("mirror %s: %w", a.id, errStalled)
	}
	return n, err
}

// close ends the attempt's request and closes its reader, if it has one.
func (a *attempt) close() {
	a.watch.Stop()
	a.cancel()
	if a.rc != nil {
		a.rc.Close()
	}
}

// run opens the range on the mirror and fills buf with its first bytes,
// then reports to done.
func (a *attempt) run(ctx context.Context, m mirrors.Mirror, key string, off, n int64, done chan<- *attempt) {
	rc, err := m.Open(ctx, key, off, n)
	if err == nil {
		a.rc = rc
		buf := (*a.buf)[:min(n, firstBytes)]
		for a.k < len(buf) && err == nil {
			var k int
			k, err = a.read(buf[a.k:])
			a.k += k
		}
		switch {
		case err == io.EOF && int64(a.k) == n:
			err = nil
		case err == io.EOF:
			err = fmt.Errorf("object ended %d bytes early: %w", n-int64(a.k), io.ErrUnexpectedEOF)
		}
	}
	if err != nil {
		a.err = fmt.Errorf("mirror %s: %w", a.id, err)
	}
	a.took = time.Since(a.asked)
	if a.state.Swap(answered) == overdue {
		a.speeds.overdue(a.id, -1)
	}
	a.speeds.asking(a.id, -1)
	done <- a
}

// An attempt's states: waiting for its first byte, overdue (still waiting
// past its hedge wait), answered (bytes or an error came).
const (
	waiting int32 = iota
	overdue
	answered
)

// late marks the attempt overdue, unless it has answered: until it does,
// reads prefer other mirrors to its own.
func (a *attempt) late() {
	if a.state.CompareAndSwap(waiting, overdue) {
		a.speeds.overdue(a.id, 1)
	}
}

// download reads a range of a file from one mirror at a time.
type download struct {
	s        *Service
	ctx      context.Context
	f        store.File
	pos, end int64     // the next byte to hand out; the byte after the range
	cur      *attempt  // the mirror being read
	head     []byte    // bytes read from cur and not handed out yet
	given    []string  // mirrors given up during this download
	buf      []byte    // what WriteTo copies through: the first winner's
	bufs     []*[]byte // every winner's, lent again by Close
	big      *[]byte   // copyBuffer bytes, for a large range
}

// next reads the rest of the range from the mirrors not given up yet,
// hedging as Open says, and makes the winner cur. why, if set, is why the
// current mirror was given up.
func (d *download) next(why error) error {
	if d.cur != nil {
		d.given = append(d.given, d.cur.id)
		d.s.gaveUp(d.cur.id, why)
		d.cur.close()
		d.cur = nil
		d.s.cfg.Log.WarnContext(d.ctx, "a mirror failed during a download; reading on from another one",
			"slug", d.f.Slug, "offset", d.pos, "err", why)
	}
	var order []*entry
	for _, m := range d.s.readOrder(d.f) {
		if e, ok := d.s.cfg.Mirrors.Get(m.id); ok && !slices.Contains(d.given, m.id) {
			order = append(order, &entry{id: m.id, m: e.Mirror})
		}
	}
	if len(order) == 0 {
		if why != nil {
			return fmt.Errorf("chunks: file %s at offset %d: no other mirror holds it: %w", d.f.Slug, d.pos, why)
		}
		return fmt.Errorf("chunks: file %s: no configured mirror holds it", d.f.Slug)
	}
	a, err := d.s.race(d.ctx, d.f.ObjectKey, d.pos, d.end-d.pos, order)
	if err != nil {
		return fmt.Errorf("chunks: file %s: %w", d.f.Slug, err)
	}
	d.cur, d.head = a, (*a.buf)[:a.k]
	d.bufs = append(d.bufs, a.buf)
	if d.buf == nil {
		d.buf = *a.buf
	}
	return nil
}

type entry struct {
	id string
	m  mirrors.Mirror
}

// race asks the mirrors in order for n bytes from off, the next one when
// the last asked fails or keeps its first byte longer than its hedge wait,
// and returns the first attempt that brings bytes. The others are
// cancelled and closed.
//
// The first mirror is asked in the caller's goroutine: most reads end with
// its answer, and a goroutine for it costs a small read more than its
// bytes do. When it is late, a goroutine takes the race on, its answer to
// come; when it fails, the race goes on from here.
func (s *Service) race(ctx context.Context, key string, off, n int64, order []*entry) (*attempt, error) {
	done := make(chan *attempt, len(order))
	first, actx := s.newAttempt(ctx, order[0].id)
	type raced struct {
		a   *attempt
		err error
	}
	hedged := make(chan raced, 1)
	wait := s.speeds.hedgeAfter(first.id)
	hold := func() time.Duration {
		d, busy := s.speeds.patience(first.id, first.asked, wait)
		first.busy = busy
		return d
	}
	check := wait
	if !s.speeds.isFixed() {
		check = min(wait, hedgeFloor)
	}
	hedge := time.AfterFunc(check, func() {
		a, err := s.raceOn(ctx, key, off, n, order, []*attempt{first}, 1, nil, done, hold)
		hedged <- raced{a, err}
	})
	first.run(actx, order[0].m, key, off, n, done)
	if !hedge.Stop() { // the race went on without this answer
		r := <-hedged
		return r.a, r.err
	}
	a := <-done
	if a.err == nil {
		s.speeds.firstByte(a.id, a.took)
		return a, nil
	}
	if !s.failed(ctx, a) {
		return nil, ctx.Err()
	}
	return s.raceOn(ctx, key, off, n, order, []*attempt{a}, 0, []error{a.err}, done, nil)
}

// raceOn goes on with a race that has asked running (pending of them are
// still to report on done; errs are why the others failed): it asks the
// next mirror when hold, if set, says the last asked has waited long
// enough (0), at once if hold is nil, then goes on as race says.
func (s *Service) raceOn(ctx context.Context, key string, off, n int64, order []*entry, running []*attempt, pending int, errs []error, done chan *attempt, hold func() time.Duration) (*attempt, error) {
	hedge := time.NewTimer(time.Hour)
	defer hedge.Stop()
	start := func() {
		e := order[len(running)]
		a, actx := s.newAttempt(ctx, e.id)
		running = append(running, a)
		go a.run(actx, e.m, key, off, n, done)
		hedge.Reset(s.speeds.hedgeAfter(e.id))
	}
	hedgeNow := func() {
		if hold != nil {
			if d := hold(); d > 0 {
				hedge.Reset(d)
				return
			}
			hold = nil
		}
		running[len(running)-1].late() // a no-op if it has answered (failed)
		if len(running) < len(order) {
			start()
			pending++
		}
	}
	hedgeNow()
	for pending > 0 {
		select {
		case a := <-done:
			pending--
			if a.err == nil {
				s.speeds.firstByte(a.id, a.took)
				s.settle(running, a, done, pending)
				return a, nil
			}
			if !s.failed(ctx, a) {
				s.settle(running, nil, done, pending)
				return nil, ctx.Err()
			}
			errs = append(errs, a.err)
			if len(running) < len(order) {
				start()
				pending++
			}
		case <-hedge.C:
			hedgeNow()
		}
	}
	return nil, errors.Join(errs...)
}

// newAttempt returns an attempt to read from mirror id and the context its
// request runs under, which its stall watch cancels.
func (s *Service) newAttempt(ctx context.Context, id string) (*attempt, context.Context) {
	actx, cancel := context.WithCancel(ctx)
	a := &attempt{speeds: s.speeds, id: id, buf: s.head(), cancel: cancel, stall: s.cfg.MirrorStall, asked: time.Now()}
	s.speeds.asking(id, 1)
	a.watch = time.AfterFunc(a.stall, cancel)
	return a, actx
}

// failed closes an attempt that brought no bytes and records why; it
// reports false when the caller went away, which is no mirror's fault and
// ends the race.
func (s *Service) failed(ctx context.Context, a *attempt) bool {
	a.close()
	s.unhead(a.buf)
	if ctx.Err() != nil {
		return false
	}
	if !errors.Is(a.err, mirrors.ErrNotFound) {
		s.gaveUp(a.id, a.err)
	}
	return true
}

// settle cancels the attempts that lost to won (all, if won is nil), marks
// those that kept their read waiting slow if one won (unless they were
// busy serving others), and closes each as it reports (pending are still
// to report on done).
func (s *Service) settle(running []*attempt, won *attempt, done <-chan *attempt, pending int) {
	if pending == 0 {
		return
	}
	for _, a := range running {
		if a == won {
			continue
		}
		if won != nil && a.state.Load() != answered && !a.busy {
			// Marked now, not once it has reported: a read that starts
			// meanwhile must not ask it first.
			s.speeds.letDown(a.id)
		}
		a.cancel()
	}
	go func() {
		for range pending {
			a := <-done
			if won != nil {
				s.report(a.id, nil)
			}
			a.close()
			s.unhead(a.buf)
		}
	}()
}

// gaveUp records that a read gave the mirror up because it failed with
// err: it is read after the others for a while.
func (s *Service) gaveUp(id string, err error) {
	s.speeds.letDown(id)
	s.report(id, err)
}

// report counts a mirror given up by a read: because it failed with err,
// or, with err nil, because another mirror answered first.
func (s *Service) report(id string, err error) {
	if s.cfg.GaveUp == nil {
		return
	}
	reason := "error"
	switch {
	case err == nil:
		reason = "hedge"
	case errors.Is(err, errStalled):
		reason = "stall"
	}
	s.cfg.GaveUp(id, reason)
}

// Read hands out the bytes in hand, then reads on from the mirror; when the
// mirror fails or stalls it goes on from the same offset on another.
func (d *download) Read(p []byte) (int, error) {
	if len(d.head) > 0 {
		n := copy(p, d.head)
		d.head = d.head[n:]
		d.pos += int64(n)
		return n, nil
	}
	if d.pos >= d.end {
		return 0, io.EOF
	}
	if d.cur == nil {
		return 0, errors.New("chunks: read after close")
	}
	if left := d.end - d.pos; int64(len(p)) > left {
		p = p[:left]
	}
	for {
		n, err := d.cur.read(p)
		d.pos += int64(n)
		switch {
		case err == nil || err == io.EOF && d.pos == d.end:
			return n, err
		case d.ctx.Err() != nil:
			return n, d.ctx.Err()
		case err == io.EOF:
			err = fmt.Errorf("mirror %s: object ended %d bytes early: %w", d.cur.id, d.end-d.pos, io.ErrUnexpectedEOF)
		}
		if err := d.next(err); err != nil {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
		if len(d.head) > 0 {
			return d.Read(p)
		}
	}
}

// WriteTo writes the rest of the range to w. A mirror whose reader copies
// by itself (a local file, sent with sendfile) does so; such a copy is
// not watched for stalls, which the kernel could not interrupt anyway. A
// mirror whose reader splices (mirrors.Splicer) is spliced, watched for
// stalls, until it stops; the rest, and other mirrors, are read through
// the download's buffer, watched.
func (d *download) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(d.head) > 0 {
			k, err := w.Write(d.head)
			total += int64(k)
			d.head, d.pos = d.head[k:], d.pos+int64(k)
			if err != nil {
				return total, err
			}
		}
		if d.pos >= d.end || d.cur == nil {
			return total, nil
		}
		if wt, ok := d.cur.rc.(io.WriterTo); ok {
			k, err := wt.WriteTo(w)
			d.pos += k
			return total + k, err
		}
		sp, ok := d.cur.rc.(mirrors.Splicer)
		if !ok || d.cur.spliced {
			break
		}
		d.cur.spliced = true
		k, stalled := sp.Splice(w, d.cur.stall)
		d.pos += k
		total += k
		if !stalled {
			break // done, or the copy failed: Read finds out whose fault it was
		}
		if err := d.next(fmt.Errorf("mirror %s: %w", d.cur.id, errStalled)); err != nil {
			return total, err
		}
	}
	buf := d.buf
	if d.end-d.pos > smallCopy {
		if b, ok := d.s.copies.Get().(*[]byte); ok {
			d.big = b
		} else {
			b := make([]byte, copyBuffer)
			d.big = &b
		}
		buf = *d.big
	}
	for d.pos < d.end {
		n, err := d.Read(buf)
		if n > 0 {
			k, werr := w.Write(buf[:n])
			total += int64(k)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Close ends the read on the current mirror.
func (d *download) Close() error {
	if d.cur == nil {
		return nil
	}
	d.cur.close()
	for _, b := range d.bufs {
		d.s.unhead(b)
	}
	if d.big != nil {
		d.s.copies.Put(d.big)
	}
	d.cur, d.head, d.buf, d.bufs, d.big = nil, nil, nil, nil, nil
	return nil
}

// head returns a first-read buffer; unhead takes it back.
func (s *Service) head() *[]byte {
	select {
	case b := <-s.heads:
		return b
	default:
		b := make([]byte, firstBytes)
		return &b
	}
}

func (s *Service) unhead(b *[]byte) {
	select {
	case s.heads <- b:
	default:
	}
}

// ranked is a mirror holding a file and what counts against it in read
// order: its speeds.rank, plus 5 if it fails its health check.
type ranked struct {
	id string
	r  int
}

// readOrder lists the mirrors holding the file, the least against them
// first (healthy ones before the others). Among equals the order is the
// file's own, so reads stay on one mirror while it serves them well (on a
// busy machine, a mirror that has been idle serves its first reads
// slowly).
func (s *Service) readOrder(f store.File) []ranked {
	rs := make([]ranked, len(f.Mirrors))
	for i, id := range f.Mirrors {
		rs[i] = ranked{id, s.speeds.rank(id)}
		if s.cfg.Health != nil && s.cfg.Health(id) != nil {
			rs[i].r += 5
		}
	}
	slices.SortStableFunc(rs, func(a, b ranked) int { return a.r - b.r })
	return rs
}

// CheckPassword reports whether password opens the file; a file without a
// password needs none.
func CheckPassword(f store.File, password string) bool {
	if len(f.PasswordHash) == 0 {
		return true
	}
	return password != "" && bcrypt.CompareHashAndPassword(f.PasswordHash, []byte(password)) == nil
}
