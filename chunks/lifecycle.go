package chunks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// The end of uploads and files: uploads abandoned half way are reaped,
// files removed, and files whose time is up expire.

// reapPage is how many idle sessions Reap reads at a time, and reapers
// how many it discards at once.
const (
	reapPage = 500
	reapers  = 16
)

// Reap abandons every upload idle for longer than idle: their mirror
// uploads are aborted and their sessions deleted. It goes on until none is
// left, so it keeps up with any rate of abandoned uploads, and returns how
// many it reaped.
func (s *Service) Reap(ctx context.Context, idle time.Duration) (int, error) {
	ctx = mirrors.Patient(ctx)
	before := s.cfg.Clock().Add(-idle)
	n := 0
	for {
		old, err := s.cfg.Store.IdleSessions(ctx, before, reapPage)
		if err != nil {
			return n, fmt.Errorf("chunks: list idle sessions: %w", err)
		}
		var wg sync.WaitGroup
		var gone atomic.Int64
		work := make(chan store.Session)
		for range min(reapers, len(old)) {
			wg.Go(func() {
				for sess := range work {
					if s.discard(ctx, sess) {
						gone.Add(1)
					}
				}
			})
		}
		for _, sess := range old {
			work <- sess
		}
		close(work)
		wg.Wait()
		n += int(gone.Load())
		// A short page is the last; a page none of which could be
		// discarded would come back the same.
		if len(old) < reapPage || gone.Load() == 0 || ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
}

// discard aborts a session's mirror uploads, unless its file is published,
// and forgets it; it reports whether the session is gone.
func (s *Service) discard(ctx context.Context, sess store.Session) bool {
	if _, ok, err := s.published(ctx, sess); err != nil {
		s.cfg.Log.WarnContext(ctx, "reap session", "upload_key", sess.UploadKey, "err", err)
		return false
	} else if !ok && !sess.Done {
		s.abortAll(ctx, sess.Uploads)
	} else if sess.Partial {
		s.dropObjects(ctx, sess) // never joined into a file
	}
	if err := s.cfg.Store.DeleteSession(ctx, sess.UploadKey); err != nil {
		s.cfg.Log.WarnContext(ctx, "delete session", "upload_key", sess.UploadKey, "err", err)
		return false
	}
	return true
}

// Remove deletes a published file: its record first, so no one is sent to a
// copy that is going away, then its object on every mirror that holds it.
func (s *Service) Remove(ctx context.Context, f store.File) error {
	if err := s.cfg.Store.DeleteFile(ctx, f.Slug); err != nil {
		return fmt.Errorf("chunks: delete file %s: %w", f.Slug, err)
	}
	return s.deleteObjects(ctx, f, f.Mirrors)
}

// Withdraw takes down the published file with the slug for a reason, one
// of the store's removed statuses: its record stays and says why, so that
// file/info and the download page can tell, and its object is deleted from
// every mirror. It returns the record as stored; a file already taken down
// keeps its first reason.
func (s *Service) Withdraw(ctx context.Context, slug, status string) (store.File, error) {
	switch status {
	case store.StatusUser, store.StatusAdmin, store.StatusCopyright:
	default:
		return store.File{}, Errorf(Invalid, "%q is not a reason to remove a file", status)
	}
	return s.withdraw(ctx, slug, status, "")
}

// lapse takes down a file whose own terms ended (ReasonExpired,
// ReasonDownloads): for its owner's clients it is as if they removed it.
func (s *Service) lapse(ctx context.Context, slug, reason string) (store.File, error) {
	return s.withdraw(ctx, slug, store.StatusUser, reason)
}

// withdraw is Withdraw with the reason the record keeps.
func (s *Service) withdraw(ctx context.Context, slug, status, reason string) (store.File, error) {
	f, err := s.cfg.Store.File(ctx, slug)
	if err != nil {
		return store.File{}, fmt.Errorf("chunks: withdraw %s: %w", slug, err)
	}
	if f.Status != store.StatusActive {
		return f, nil
	}
	held := slices.Concat(f.Mirrors, f.Missing)
	f.Status, f.Mirrors, f.Missing, f.Reason = status, nil, nil, reason
	if reason != ReasonExpired {
		f.Expires = time.Time{}
	}
	if err := s.cfg.Store.UpdateFile(ctx, f); err != nil {
		return store.File{}, fmt.Errorf("chunks: withdraw %s: %w", slug, err)
	}
	s.notify(ctx, EventRemoved, f)
	return f, s.deleteObjects(ctx, f, held)
}

// deleteObjects deletes f's object from the mirrors with the ids; one that
// is already gone is not an error.
func (s *Service) deleteObjects(ctx context.Context, f store.File, ids []string) error {
	var errs []error
	for _, id := range ids {
		e, ok := s.cfg.Mirrors.Get(id)
		if !ok {
			continue
		}
		if err := e.Mirror.Delete(ctx, f.ObjectKey); err != nil && !errors.Is(err, mirrors.ErrNotFound) {
			errs = append(errs, fmt.Errorf("mirror %s: %w", id, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("chunks: file %s: delete object: %w", f.Slug, errors.Join(errs...))
	}
	return nil
}

// Expire takes down files whose expiry has passed and returns how many it
// took down. A file its owner never confirmed is removed with its record;
// any other is taken down as lapse does (its record stays, saying why). Any
// node may run it; downloads are refused from the expiry on whether or not
// it ran.
func (s *Service) Expire(ctx context.Context) (int, error) {
	ctx = mirrors.Patient(ctx)
	n := 0
	for {
		old, err := s.cfg.Store.ExpiredFiles(ctx, s.cfg.Clock(), 100)
		if err != nil {
			return n, fmt.Errorf("chunks: list expired files: %w", err)
		}
		gone := 0
		for _, f := range old {
			if s.expire(ctx, f) {
				gone++
			}
		}
		n += gone
		if len(old) < 100 || gone == 0 || ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
}

// expire takes down one file ExpiredFiles listed, and reports whether it
// did.
func (s *Service) expire(ctx context.Context, f store.File) bool {
	// Read again: an unconfirmed file may have been confirmed since the
	// list was made.
	cur, err := s.cfg.Store.File(ctx, f.Slug)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		s.cfg.Log.WarnContext(ctx, "read expired file", "slug", f.Slug, "err", err)
		return false
	}
	f = cur
	if f.Status != store.StatusActive || !Expired(f, s.cfg.Clock()) {
		return false
	}
	if f.Unconfirmed {
		err = s.Remove(ctx, f)
		if err == nil {
			s.notify(ctx, EventRemoved, f)
		}
	} else {
		_, err = s.lapse(ctx, f.Slug, ReasonExpired)
	}
	if err != nil {
		s.cfg.Log.WarnContext(ctx, "remove expired file", "slug", f.Slug, "err", err)
		return false
	}
	return true
}

// Confirm keeps an unconfirmed file for good, as its owner asked: it no
// longer lapses. A file confirmed already is returned as it is; one whose
// time ran out, or that was taken down, is an Invalid error, and so is a
// file that was never unconfirmed.
func (s *Service) Confirm(ctx context.Context, f store.File) (store.File, error) {
	switch {
	case f.Status != store.StatusActive:
		return f, Errorf(Invalid, "file %s is %s", f.Alias, f.Status)
	case f.Unconfirmed && !s.cfg.Clock().Before(f.Expires):
		return f, Errorf(Invalid, "file %s was not confirmed in time and is gone", f.Alias)
	case !f.Unconfirmed && !f.Expires.IsZero():
		return f, Errorf(Invalid, "file %s is not waiting for a confirmation", f.Alias)
	case !f.Unconfirmed:
		return f, nil
	}
	f.Unconfirmed, f.Expires = false, time.Time{}
	if err := s.cfg.Store.UpdateFile(ctx, f); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			return f, Errorf(Invalid, "file %s is gone", f.Alias)
		}
		return f, unavailable("cannot confirm the file now; try again", fmt.Errorf("chunks: confirm %s: %w", f.Slug, err))
	}
	return f, nil
}
