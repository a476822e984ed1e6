package chunks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/acestash/acestash/store"
)

// The lease of a stream upload is held by its caller (tus's lock, a Lease
// from Acquire) for as long as a request runs, and checked by every call
// that writes. A request that wants the lease asks its holder to let go
// through the session's LeaseWants (Want), which a watched Lease sees.

// Want asks whoever holds the upload's lease to let go, by counting one
// more in its LeaseWants.
func (s *Service) Want(ctx context.Context, key string) error {
	return s.changeSession(ctx, key, "want", func(sess *store.Session) bool {
		if sess.Lease == "" {
			return false
		}
		sess.LeaseWants++
		return true
	})
}

// Release ends holder's lease on the upload, if holder still has it.
func (s *Service) Release(ctx context.Context, key, holder string) error {
	err := s.changeSession(ctx, key, "release", func(sess *store.Session) bool {
		if sess.Lease != holder {
			return false
		}
		sess.Lease, sess.LeaseUntil = "", time.Time{}
		return true
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // no upload, no lease
	}
	return err
}

// changeSession stores the upload's session as change leaves it, over the
// session as it is now if another write came first; change returns false
// to leave it as it is. what names the call in errors.
func (s *Service) changeSession(ctx context.Context, key, what string, change func(*store.Session) bool) error {
	for range 5 {
		sess, err := s.cfg.Store.Session(ctx, key)
		if err != nil {
			return fmt.Errorf("chunks: %s upload %s: %w", what, key, err)
		}
		if !change(&sess) {
			return nil
		}
		_, err = s.cfg.Store.UpdateSession(ctx, sess)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("chunks: %s upload %s: %w", what, key, store.ErrConflict)
}

// held reads the upload for a call made under holder's lease.
func (s *Service) held(ctx context.Context, a store.Account, key, holder string) (store.Session, error) {
	sess, err := s.Stream(ctx, a, key)
	if err != nil {
		return sess, err
	}
	if sess.Lease != holder || !s.cfg.Clock().Before(sess.LeaseUntil) {
		return sess, busy(nil)
	}
	return sess, nil
}
