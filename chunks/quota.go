package chunks

import (
	"context"
	"errors"
	"math"
	"sync"

	"github.com/google/uuid"

	"github.com/acestash/acestash/store"
)

// Quotas: an account with quota_bytes or quota_files may hold at most that
// much in active files, as the store counts them. An upload is refused as
// soon as it is known not to fit: at file/upload when the quota is used up,
// at the first chunk when its Content-Range total does not fit, else at the
// chunk that crosses the quota; an upload refused part way is discarded
// whole. Uploads running at once are each checked against the files stored
// while their bytes arrive; the account's files are then published one at
// a time, under a lock in the store, each checked again, so together they
// never pass the quota: the one that no longer fits is dropped.

// room returns how many more bytes the account may store, -1 when it has
// no byte quota, or an OverQuota error when it may store no more files or
// bytes. An account without quotas costs no store call.
func (s *Service) room(ctx context.Context, a store.Account) (int64, error) {
	if a.QuotaBytes <= 0 && a.QuotaFiles <= 0 {
		return -1, nil
	}
	u, err := s.cfg.Store.Usage(ctx, a.APIKey)
	if err != nil {
		return 0, unavailable("cannot read the account's usage", err)
	}
	if a.QuotaFiles > 0 && u.Files >= a.QuotaFiles {
		return 0, Errorf(OverQuota, "this account has reached its quota of %d files; remove files before uploading more", a.QuotaFiles)
	}
	if a.QuotaBytes <= 0 {
		return -1, nil
	}
	left := a.QuotaBytes - u.Bytes
	if left <= 0 {
		return 0, Errorf(OverQuota, "this account has used its quota of %d bytes; remove files before uploading more", a.QuotaBytes)
	}
	return left, nil
}

// Room reports, before a request's body is read, whether the account may
// store a file of size bytes (size < 0: unknown) under its quotas.
func (s *Service) Room(ctx context.Context, a store.Account, size int64) error {
	_, _, err := s.capped(ctx, a, size, 0, math.MaxInt64)
	return err
}

func doesNotFit(a store.Account, size, left int64) error {
	return Errorf(OverQuota, "the file of %d bytes does not fit in this account's quota of %d bytes: %d bytes are left", size, a.QuotaBytes, left)
}

// crossed is the error of an upload that went past the quota while its
// bytes arrived.
func crossed(a store.Account, left int64) error {
	return Errorf(OverQuota, "the upload goes past this account's quota of %d bytes (%d bytes were left); nothing of it was kept", a.QuotaBytes, left)
}

// capped checks that a file of size bytes (size < 0: unknown) fits in
// what the account's quotas leave, and lowers limit, the bytes a request may
// bring after the base the upload holds, to what the quota leaves after
// base. quota is what the quota left when it is what bounds the limit,
// else -1.
func (s *Service) capped(ctx context.Context, a store.Account, size, base, limit int64) (capped, quota int64, err error) {
	left, err := s.room(ctx, a)
	switch {
	case err != nil:
		return 0, -1, err
	case left < 0:
		return limit, -1, nil
	case size > left:
		return 0, -1, doesNotFit(a, size, left)
	case left-base < limit:
		return max(left-base, 0), left, nil
	}
	return limit, -1, nil
}

// isOverQuota reports whether err is a quota's refusal.
func isOverQuota(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.Kind == OverQuota
}

// lockQuota takes the store's lock on publishing the account's files,
// waiting up to LeaseWait for another holder; call unlock, once or more,
// when the file is published or refused. The lock runs out by itself
// after LeaseTime should this node stop holding it.
func (s *Service) lockQuota(ctx context.Context, a store.Account) (unlock func(), err error) {
	name, holder := "quota:"+a.APIKey, uuid.NewString()
	if werr := s.waitFree(ctx, func() bool {
		err = s.cfg.Store.Lock(ctx, name, holder, s.until())
		return !errors.Is(err, store.ErrLeased)
	}); werr != nil {
		return nil, unavailable("the request ended while waiting to publish", werr)
	}
	switch {
	case errors.Is(err, store.ErrLeased):
		return nil, unavailable("other uploads of this account are being published; retry", err)
	case err != nil:
		return nil, unavailable("cannot take the lock on the account's quota", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			// Renewed to end now: the next publisher need not wait it out.
			ctx := context.WithoutCancel(ctx)
			if err := s.cfg.Store.Lock(ctx, name, holder, s.cfg.Clock().UTC()); err != nil {
				s.cfg.Log.WarnContext(ctx, "release quota lock", "account", a.Name, "err", err)
			}
		})
	}, nil
}

// dropUpload removes what an upload refused at publishing stored: its
// objects, and its session when stored says there is one.
func (s *Service) dropUpload(ctx context.Context, sess store.Session, stored bool) {
	ctx = context.WithoutCancel(ctx)
	s.dropObjects(ctx, sess)
	if !stored {
		return
	}
	if err := s.cfg.Store.DeleteSession(ctx, sess.UploadKey); err != nil {
		s.cfg.Log.WarnContext(ctx, "delete refused upload", "upload_key", sess.UploadKey, "err", err)
	}
}
