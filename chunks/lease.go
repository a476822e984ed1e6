package chunks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/acestash/acestash/store"
)

// A request writes to an upload's mirrors only while it holds the upload's
// lease, taken in the store with the same round trip that reads the
// session, so two requests for one upload, on one node or two, never write
// over each other's parts. A lease is short (LeaseTime) and renewed in the
// background while its request runs, so it ends with its holder: a request
// that commits, gives up or fails releases it, and one whose node dies, or
// that cannot reach the store, lets it run out within LeaseTime. A request
// that cannot renew in time stops writing before its lease can pass to
// another.

// DefaultLeaseTime is how long a lease lasts between renewals by default.
const DefaultLeaseTime = 10 * time.Second

// leaseTime is how long a lease holds from when it is taken or renewed.
func (s *Service) leaseTime() time.Duration { return s.cfg.LeaseTime }

// until returns when a lease taken or renewed now ends.
func (s *Service) until() time.Time { return s.cfg.Clock().UTC().Add(s.leaseTime()) }

// errLeaseLost is the cause of a held request's context ending because it
// could not keep its lease.
var errLeaseLost = errors.New("chunks: the upload's lease was lost")

// Lease is one request's hold on an upload: taken in the store, renewed
// every quarter of LeaseTime until End. Its Context ends, with a cause
// wrapping errLeaseLost, when a renewal is refused or none has succeeded
// for half of LeaseTime, which stops the request's writes while the lease,
// as others see it, still runs. A watched lease also tells, through
// Wanted, when another request asked for the upload (Want). Every way bytes
// reach an upload (a MirrorAce chunk, a whole file, a tus request) holds one.
type Lease struct {
	s      *Service
	key    string
	holder string
	ctx    context.Context
	cancel context.CancelCauseFunc
	wanted chan struct{} // closed when another request asks; nil: not watched
	wants  int           // the session's LeaseWants when the lease was taken
	stop   chan struct{}
	done   chan struct{}
}

// Acquire takes the upload's lease for a new holder, without waiting, and
// returns it with the session as stored. While another holder's lease runs
// it returns the session unchanged with an error wrapping store.ErrLeased;
// on an upload that does not exist, one wrapping store.ErrNotFound. The
// lease's Context is ctx's child. With watch, the lease looks for requests
// that want the upload every second (one store read each).
func (s *Service) Acquire(ctx context.Context, key string, watch bool) (*Lease, store.Session, error) {
	holder := uuid.NewString()
	taken := time.Now()
	sess, err := s.cfg.Store.Lease(ctx, key, holder, s.until())
	if err != nil {
		return nil, sess, err
	}
	l := &Lease{s: s, key: key, holder: holder, wants: sess.LeaseWants, stop: make(chan struct{}), done: make(chan struct{})}
	if watch {
		l.wanted = make(chan struct{})
	}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	go l.run(taken)
	return l, sess, nil
}

// Holder names the lease's holder in the store: the calls that write under
// a lease taken elsewhere (Append, Finish, …) take it.
func (l *Lease) Holder() string { return l.holder }

// Context ends when the lease is lost or ended.
func (l *Lease) Context() context.Context { return l.ctx }

// Wanted is closed when another request asks for the upload; nil for a
// lease not watched.
func (l *Lease) Wanted() <-chan struct{} { return l.wanted }

func (l *Lease) run(last time.Time) {
	defer close(l.done)
	lt := l.s.leaseTime()
	period := lt / 4
	if l.wanted != nil {
		period = min(period, time.Second)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if l.wanted != nil && time.Since(last) < lt/4 {
			l.look()
			continue
		}
		sent := time.Now()
		// A slow answer is waited for until the lease must be given up.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), max(lt/2-sent.Sub(last), lt/8))
		err := l.s.cfg.Store.Renew(ctx, l.key, l.holder, l.s.until())
		cancel()
		switch {
		case err == nil:
			last = sent
		case errors.Is(err, store.ErrLeased) || errors.Is(err, store.ErrNotFound):
			l.cancel(fmt.Errorf("%w: %w", errLeaseLost, err))
			return
		case time.Since(last) >= lt/2:
			l.cancel(fmt.Errorf("%w: %w", errLeaseLost, err))
			l.s.cfg.Log.WarnContext(l.ctx, "upload lease not renewed in time; stopped the request", "upload_key", l.key, "err", err)
			return
		default:
			l.s.cfg.Log.WarnContext(l.ctx, "renew upload lease", "upload_key", l.key, "err", err)
		}
	}
}

// look closes wanted once the session's LeaseWants has grown.
func (l *Lease) look() {
	select {
	case <-l.wanted:
		return // told already
	default:
	}
	sess, err := l.s.cfg.Store.Session(context.WithoutCancel(l.ctx), l.key)
	if err == nil && sess.LeaseWants > l.wants {
		close(l.wanted)
	}
}

// End stops renewing; the lease itself is released or committed by the
// request. It is safe on a nil Lease.
func (l *Lease) End() {
	if l == nil {
		return
	}
	close(l.stop)
	<-l.done
	l.cancel(nil)
}

// lost reports whether the request lost its lease.
func (l *Lease) lost() bool {
	return l != nil && errors.Is(context.Cause(l.ctx), errLeaseLost)
}

// context returns the context a request's writes run under: ctx, cut when
// the lease is lost.
func (l *Lease) context(ctx context.Context) context.Context {
	if l == nil {
		return ctx
	}
	return l.ctx
}

// take reads the request's session and takes its lease, which is renewed
// until the returned Lease's End; the Lease is nil, with the session as
// stored, when another request holds the lease. It waits up to LeaseWait
// for the lease of an unfinished upload: the holder is most often the same
// client's previous try, cut off a moment ago and about to let go.
func (s *Service) take(ctx context.Context, uploadKey, ctracker string, a store.Account) (sess store.Session, l *Lease, err error) {
	if werr := s.waitFree(ctx, func() bool {
		l, sess, err = s.Acquire(ctx, uploadKey, false)
		return !errors.Is(err, store.ErrLeased) || finished(sess)
	}); werr != nil {
		return sess, nil, unavailable("the request ended while waiting for another one on this upload", werr)
	}
	if errors.Is(err, store.ErrLeased) {
		err = nil // the session was read; only the lease is another's
	}
	if err := belongs(sess, err, a, ctracker); err != nil {
		l.End()
		s.release(ctx, sess, l != nil)
		return sess, nil, err
	}
	return sess, l, nil
}

// waitFree calls try until it reports done, or until LeaseWait has passed,
// pausing 10 ms between calls, then twice as long each time up to 250 ms.
// It fails only when ctx ends while it pauses.
func (s *Service) waitFree(ctx context.Context, try func() (done bool)) error {
	deadline := time.Now().Add(s.cfg.LeaseWait)
	for pause := 10 * time.Millisecond; !try(); pause = min(2*pause, 250*time.Millisecond) {
		if time.Now().Add(pause).After(deadline) {
			return nil
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return nil
}

// belongs checks what reading a request's session gave: that it exists,
// belongs to the account and goes with the request's cTracker.
func belongs(sess store.Session, err error, a store.Account, ctracker string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Errorf(Invalid, "upload_key not found or expired; ask file/upload for a new one")
	case err != nil:
		return unavailable("cannot read the upload session", err)
	case sess.APIKey != a.APIKey:
		return Errorf(Invalid, "upload_key belongs to another api_key")
	case sess.CTracker == "":
		return Errorf(Invalid, "upload_key not found or expired; ask file/upload for a new one") // a tus upload
	case sess.CTracker != ctracker:
		return Errorf(Invalid, "cTracker does not match the upload_key")
	}
	return nil
}

// finished reports whether a session holds every byte of its file.
func finished(sess store.Session) bool {
	return sess.Done || sess.Started && sess.Total >= 0 && sess.Held == sess.Total
}

// release gives up a lease that wrote nothing worth keeping. Should the
// store not answer, the lease runs out by itself within LeaseTime.
func (s *Service) release(ctx context.Context, sess store.Session, held bool) {
	if !held {
		return
	}
	sess.Lease, sess.LeaseUntil = "", time.Time{}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.leaseTime())
	defer cancel()
	if _, err := s.cfg.Store.UpdateSession(ctx, sess); err != nil {
		s.cfg.Log.WarnContext(ctx, "release upload lease", "upload_key", sess.UploadKey, "err", err)
	}
}

// kept returns the error of a request that held a lease: when the lease
// was lost, the request is told to retry, whatever failed on the way,
// unless the quota refused the upload (which deletes its session, so the
// lease is lost by design).
func kept(l *Lease, err error) error {
	if err != nil && !isOverQuota(err) && l.lost() {
		return &Error{Kind: Unavailable, Msg: "this request lost its hold on the upload (another took over, or the store did not answer); retry this chunk",
			Err: context.Cause(l.ctx)}
	}
	return err
}

func busy(err error) *Error {
	return &Error{Kind: Unavailable, Msg: "another request for this upload is in progress; retry this chunk", Err: err}
}
