package chunks

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/acestash/acestash/store"
)

// A request writes to an upload's mirrors only while it holds the upload's
// lease, taken in the store with the same round trip that reads the
// session, so two requests for one upload, on one node or two, never write
// over each other's parts. The lease ends when the request commits what it
// wrote, gives up, or runs out.

// leaseTime is how long a lease holds: long enough to receive a chunk and
// write it, each mirror operation being bounded by MirrorTimeout.
func (s *Service) leaseTime() time.Duration { return 2*s.cfg.MirrorTimeout + time.Minute }

// take reads the request's session and takes its lease. held is false,
// with the session as stored, when another request holds the lease. It
// waits up to LeaseWait for the lease of an unfinished upload: the holder is
// most often the same client's previous try, cut off a moment ago and about
// to let go.
func (s *Service) take(ctx context.Context, uploadKey, ctracker string, a store.Account) (sess store.Session, held bool, err error) {
	holder := uuid.NewString()
	deadline := time.Now().Add(s.cfg.LeaseWait)
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 250*time.Millisecond) {
		sess, err = s.cfg.Store.Lease(ctx, uploadKey, holder, s.cfg.Clock().UTC().Add(s.leaseTime()))
		if !errors.Is(err, store.ErrLeased) || finished(sess) || time.Now().Add(pause).After(deadline) {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return sess, false, unavailable("the request ended while waiting for another one on this upload", ctx.Err())
		}
	}
	held = err == nil
	if errors.Is(err, store.ErrLeased) {
		err = nil // the session was read; only the lease is another's
	}
	if err := belongs(sess, err, a, ctracker); err != nil {
		s.release(ctx, sess, held)
		return sess, false, err
	}
	return sess, held, nil
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

// release gives up a lease that wrote nothing worth keeping.
func (s *Service) release(ctx context.Context, sess store.Session, held bool) {
	if !held {
		return
	}
	sess.Lease, sess.LeaseUntil = "", time.Time{}
	if _, err := s.cfg.Store.UpdateSession(context.WithoutCancel(ctx), sess); err != nil {
		s.cfg.Log.WarnContext(ctx, "release upload lease", "upload_key", sess.UploadKey, "err", err)
	}
}

func busy(err error) *Error {
	return &Error{Kind: Unavailable, Msg: "another request for this upload is in progress; retry this chunk", Err: err}
}
