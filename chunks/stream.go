package chunks

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/acestash/acestash/store"
)

// Stream uploads (tus): a file whose bytes arrive in order over any number
// of requests, each continuing where the bytes held end, on any node. The
// caller holds the upload's lease (Hold) around every call that writes, for
// as long as it likes, renewing it; a request cut off keeps every byte it
// delivered, so the next one continues after them. The bytes take the same
// way as a MirrorAce chunk's (feed and saveHeld, advance.go): pieces fanned
// out to every mirror, the write quorum, SHA-256 state kept in the session.

// StreamSpec describes a stream upload to create.
type StreamSpec struct {
	Account  store.Account
	Name     string
	Type     string   // used instead of the sniffed type when set
	Mirrors  []string // empty: the account's default mirrors
	Password string
	Terms    Terms             // expiry and download limit (TermsFor)
	Size     int64             // -1: declared later, with Declare
	Meta     map[string]string // told back as given
	// Partial uploads are joined into another file by Join and are never
	// published by themselves.
	Partial bool
}

// Create stores the session of a new stream upload. Its upload key names
// the upload from then on.
func (s *Service) Create(ctx context.Context, spec StreamSpec) (store.Session, error) {
	if max := s.MaxFileSize(spec.Account); spec.Size > max {
		return store.Session{}, tooLarge(spec.Size, max)
	}
	if err := s.Room(ctx, spec.Account, spec.Size); err != nil {
		return store.Session{}, err
	}
	ids := spec.Mirrors
	if len(ids) == 0 {
		ids = s.DefaultMirrors(spec.Account)
	}
	return s.newSession(ctx, "cannot create the upload", func(key, sl string, now time.Time) (store.Session, error) {
		sess := store.Session{
			UploadKey: key, APIKey: spec.Account.APIKey, Slug: sl, Type: spec.Type,
			Issued: now, Expires: now, Updated: now, Started: true, Total: spec.Size,
			Meta: spec.Meta, Partial: spec.Partial,
		}
		err := s.start(&sess, spec.Account, spec.Name, ids, spec.Password)
		setTerms(&sess, spec.Terms)
		return sess, err
	})
}

// Stream returns the session of the account's stream upload.
func (s *Service) Stream(ctx context.Context, a store.Account, key string) (store.Session, error) {
	sess, err := s.cfg.Store.Session(ctx, key)
	return sess, owned(sess, err, a)
}

// ErrNoUpload is wrapped by the errors of stream calls on an upload that
// does not exist, or not for the account.
var ErrNoUpload = errors.New("chunks: no such upload")

func owned(sess store.Session, err error, a store.Account) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Kind: Invalid, Msg: "upload not found or expired", Err: ErrNoUpload}
	case err != nil:
		return unavailable("cannot read the upload", err)
	case sess.APIKey != a.APIKey || sess.CTracker != "": // another's, or a MirrorAce upload
		return &Error{Kind: Invalid, Msg: "upload not found or expired", Err: ErrNoUpload}
	}
	return nil
}

// Append writes everything body yields to the stream upload at offset,
// which must be where its bytes end, under holder's lease, and returns the
// session after it. A body that ends before the upload's size leaves the
// upload to be continued from the new end; one that goes past it, or past
// the account's limit, is refused. Once every byte is held the file is
// published (a partial upload is only completed on its mirrors), and the
// session returned is Done.
func (s *Service) Append(ctx context.Context, a store.Account, key, holder string, offset int64, body io.Reader) (store.Session, error) {
	sess, err := s.held(ctx, a, key, holder)
	if err != nil {
		return sess, err
	}
	if offset != sess.Held {
		return sess, Errorf(Invalid, "offset %d is not where the upload's bytes end, %d", offset, sess.Held)
	}
	if finished(sess) {
		return s.complete(ctx, a, sess, holder)
	}
	next, w, err := s.feed(ctx, a, sess, s.tail(a, sess), body)
	if isOverQuota(err) {
		s.discard(context.WithoutCancel(ctx), sess) // it cannot finish: drop all of it
	}
	if err != nil || w.n == 0 {
		return sess, err
	}
	saved, err := s.saveHeld(context.WithoutCancel(ctx), sess, next, holder, "cannot record the upload")
	if err != nil {
		s.undo(ctx, &next, w, sess.Uploads == nil)
		return sess, err
	}
	if finished(saved) {
		return s.complete(ctx, a, saved, holder)
	}
	return saved, nil
}

// tail is where a stream upload's next bytes go: after those it holds, up
// to its size or, while that is unknown, the account's maximum file size.
func (s *Service) tail(a store.Account, sess store.Session) step {
	st := step{base: sess.Held, total: sess.Total, whole: sess.Held == 0 && sess.Total >= 0}
	if sess.Total >= 0 {
		st.limit, st.over = sess.Total-sess.Held, Errorf(Invalid, "the bytes go past the upload's size of %d bytes", sess.Total)
	} else {
		most := s.MaxFileSize(a)
		st.limit, st.over = most-sess.Held, overMax(most)
	}
	return st
}

// Declare sets the size of a stream upload created without one.
func (s *Service) Declare(ctx context.Context, a store.Account, key, holder string, size int64) (store.Session, error) {
	sess, err := s.held(ctx, a, key, holder)
	if err != nil {
		return sess, err
	}
	switch {
	case sess.Total >= 0 && sess.Total != size:
		return sess, Errorf(Invalid, "the upload's size is %d bytes already", sess.Total)
	case size < sess.Held:
		return sess, Errorf(Invalid, "size %d is less than the %d bytes held", size, sess.Held)
	case size > s.MaxFileSize(a):
		return sess, tooLarge(size, s.MaxFileSize(a))
	}
	next := sess
	next.Total = size
	next.Updated = s.cfg.Clock().UTC()
	return s.saveHeld(ctx, sess, next, holder, "cannot record the upload")
}

// Finish publishes a stream upload that holds every byte, if that has not
// happened yet, and returns its session.
func (s *Service) Finish(ctx context.Context, a store.Account, key, holder string) (store.Session, error) {
	sess, err := s.held(ctx, a, key, holder)
	if err != nil {
		return sess, err
	}
	if !finished(sess) {
		return sess, Errorf(Invalid, "the upload holds %d of %d bytes", sess.Held, sess.Total)
	}
	return s.complete(ctx, a, sess, holder)
}

// complete makes the objects of an upload that holds every byte, then
// publishes the file unless the upload is partial, and marks it Done.
func (s *Service) complete(ctx context.Context, a store.Account, sess store.Session, holder string) (store.Session, error) {
	if sess.Done {
		return sess, nil
	}
	ctx = context.WithoutCancel(ctx)
	base := sess
	switch {
	case sess.Uploads != nil:
		if err := s.completeAll(ctx, &sess, sess.Last); err != nil {
			return base, err
		}
		s.abortFailed(ctx, sess)
	case sess.Total == 0:
		w := s.newWrite(&sess, nil, nil)
		if err := w.putAll(ctx, nil); err != nil {
			return base, err
		}
	}
	// Otherwise one Put a mirror stored the whole file already.
	if !sess.Partial {
		f, err := s.record(sess)
		if err != nil {
			return base, err
		}
		// A slug drawn again is stored at once, so a repeat finds the record.
		if _, err := s.publish(ctx, a, &sess, f, true); err != nil {
			return base, err
		}
	}
	sess.Done = true
	sess.Updated = s.cfg.Clock().UTC()
	saved, err := s.saveHeld(ctx, base, sess, holder, "cannot record the upload")
	if err != nil && !sess.Partial {
		// The file is published under the session's slug; Stream callers
		// find it there.
		s.cfg.Log.WarnContext(ctx, "mark stream upload done", "upload_key", sess.UploadKey, "err", err)
		return sess, nil
	}
	return saved, err
}

// Cancel discards a stream upload that is not published: its uploads on
// every mirror, the objects of a finished partial upload, and its session.
func (s *Service) Cancel(ctx context.Context, a store.Account, key, holder string) error {
	sess, err := s.held(ctx, a, key, holder)
	if err != nil {
		return err
	}
	if sess.Done && !sess.Partial {
		return Errorf(Invalid, "the upload is finished: it is the file %s now", sess.Slug)
	}
	ctx = context.WithoutCancel(ctx)
	if sess.Done || sess.Uploads == nil && sess.Held > 0 {
		s.dropObjects(ctx, sess) // completed, or stored with one Put
	} else {
		s.abortAll(ctx, sess.Uploads)
	}
	if err := s.cfg.Store.DeleteSession(ctx, key); err != nil {
		return unavailable("cannot remove the upload", err)
	}
	return nil
}

// dropObjects removes the object of an unpublished session from its
// mirrors, logging what fails.
func (s *Service) dropObjects(ctx context.Context, sess store.Session) {
	f := store.File{Slug: sess.UploadKey, ObjectKey: sess.ObjectKey}
	if err := s.deleteObjects(ctx, f, sess.Mirrors); err != nil {
		s.cfg.Log.WarnContext(ctx, "delete unpublished object", "upload_key", sess.UploadKey, "err", err)
	}
}
