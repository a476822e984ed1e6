package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/acestash/acestash/store"
)

// Store returns st timing every operation and counting its failures.
func (m *Metrics) Store(st store.Store) store.Store { return &timedStore{st: st, m: m} }

type timedStore struct {
	st store.Store
	m  *Metrics
}

// Unwrap returns the store it times.
func (s *timedStore) Unwrap() store.Store { return s.st }

// observe records one operation that started at start and ended with err.
// The store's answers (not found, exists, conflict, leased) are not
// failures, nor is a request that ended (its client went away).
func (s *timedStore) observe(op string, start time.Time, err error) {
	s.m.storeOps.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrExists) &&
		!errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrLeased) && !errors.Is(err, context.Canceled) {
		s.m.storeErrs.WithLabelValues(op).Inc()
	}
}

func (s *timedStore) PutAccount(ctx context.Context, a store.Account) (err error) {
	defer func(t time.Time) { s.observe("put_account", t, err) }(time.Now())
	return s.st.PutAccount(ctx, a)
}

func (s *timedStore) Account(ctx context.Context, apiKey string) (a store.Account, err error) {
	defer func(t time.Time) { s.observe("account", t, err) }(time.Now())
	return s.st.Account(ctx, apiKey)
}

func (s *timedStore) AccountByUserID(ctx context.Context, userID string) (a store.Account, err error) {
	defer func(t time.Time) { s.observe("account_by_user_id", t, err) }(time.Now())
	return s.st.AccountByUserID(ctx, userID)
}

func (s *timedStore) Accounts(ctx context.Context) (l []store.Account, err error) {
	defer func(t time.Time) { s.observe("accounts", t, err) }(time.Now())
	return s.st.Accounts(ctx)
}

func (s *timedStore) DeleteAccount(ctx context.Context, apiKey string) (err error) {
	defer func(t time.Time) { s.observe("delete_account", t, err) }(time.Now())
	return s.st.DeleteAccount(ctx, apiKey)
}

func (s *timedStore) CreateSession(ctx context.Context, sess store.Session) (err error) {
	defer func(t time.Time) { s.observe("create_session", t, err) }(time.Now())
	return s.st.CreateSession(ctx, sess)
}

func (s *timedStore) Session(ctx context.Context, uploadKey string) (sess store.Session, err error) {
	defer func(t time.Time) { s.observe("session", t, err) }(time.Now())
	return s.st.Session(ctx, uploadKey)
}

func (s *timedStore) UpdateSession(ctx context.Context, sess store.Session) (_ store.Session, err error) {
	defer func(t time.Time) { s.observe("update_session", t, err) }(time.Now())
	return s.st.UpdateSession(ctx, sess)
}

func (s *timedStore) Lease(ctx context.Context, uploadKey, holder string, until time.Time) (_ store.Session, err error) {
	defer func(t time.Time) { s.observe("lease", t, err) }(time.Now())
	return s.st.Lease(ctx, uploadKey, holder, until)
}

func (s *timedStore) DeleteSession(ctx context.Context, uploadKey string) (err error) {
	defer func(t time.Time) { s.observe("delete_session", t, err) }(time.Now())
	return s.st.DeleteSession(ctx, uploadKey)
}

func (s *timedStore) IdleSessions(ctx context.Context, before time.Time, limit int) (_ []store.Session, err error) {
	defer func(t time.Time) { s.observe("idle_sessions", t, err) }(time.Now())
	return s.st.IdleSessions(ctx, before, limit)
}

func (s *timedStore) CreateFile(ctx context.Context, f store.File) (_ store.File, err error) {
	defer func(t time.Time) { s.observe("create_file", t, err) }(time.Now())
	return s.st.CreateFile(ctx, f)
}

func (s *timedStore) File(ctx context.Context, slug string) (_ store.File, err error) {
	defer func(t time.Time) { s.observe("file", t, err) }(time.Now())
	return s.st.File(ctx, slug)
}

func (s *timedStore) Files(ctx context.Context, slugs []string) (_ map[string]store.File, err error) {
	defer func(t time.Time) { s.observe("files", t, err) }(time.Now())
	return s.st.Files(ctx, slugs)
}

func (s *timedStore) FileByAlias(ctx context.Context, alias string) (_ store.File, err error) {
	defer func(t time.Time) { s.observe("file_by_alias", t, err) }(time.Now())
	return s.st.FileByAlias(ctx, alias)
}

func (s *timedStore) UpdateFile(ctx context.Context, f store.File) (err error) {
	defer func(t time.Time) { s.observe("update_file", t, err) }(time.Now())
	return s.st.UpdateFile(ctx, f)
}

func (s *timedStore) DeleteFile(ctx context.Context, slug string) (err error) {
	defer func(t time.Time) { s.observe("delete_file", t, err) }(time.Now())
	return s.st.DeleteFile(ctx, slug)
}

func (s *timedStore) OwnerFiles(ctx context.Context, owner string, offset, limit int) (_ []store.File, _ int, err error) {
	defer func(t time.Time) { s.observe("owner_files", t, err) }(time.Now())
	return s.st.OwnerFiles(ctx, owner, offset, limit)
}

func (s *timedStore) ExpiredFiles(ctx context.Context, before time.Time, limit int) (_ []store.File, err error) {
	defer func(t time.Time) { s.observe("expired_files", t, err) }(time.Now())
	return s.st.ExpiredFiles(ctx, before, limit)
}

func (s *timedStore) Ping(ctx context.Context) (err error) {
	defer func(t time.Time) { s.observe("ping", t, err) }(time.Now())
	return s.st.Ping(ctx)
}

func (s *timedStore) Close() error { return s.st.Close() }

func (s *timedStore) Usage(ctx context.Context, owner string) (_ store.Usage, err error) {
	defer func(t time.Time) { s.observe("usage", t, err) }(time.Now())
	return s.st.Usage(ctx, owner)
}

func (s *timedStore) AddDeliveries(ctx context.Context, ds []store.Delivery) (err error) {
	defer func(t time.Time) { s.observe("add_deliveries", t, err) }(time.Now())
	return s.st.AddDeliveries(ctx, ds)
}

func (s *timedStore) ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) (_ []store.Delivery, err error) {
	defer func(t time.Time) { s.observe("claim_deliveries", t, err) }(time.Now())
	return s.st.ClaimDeliveries(ctx, now, until, limit)
}

func (s *timedStore) PutDelivery(ctx context.Context, d store.Delivery) (err error) {
	defer func(t time.Time) { s.observe("put_delivery", t, err) }(time.Now())
	return s.st.PutDelivery(ctx, d)
}

func (s *timedStore) DeleteDelivery(ctx context.Context, id string) (err error) {
	defer func(t time.Time) { s.observe("delete_delivery", t, err) }(time.Now())
	return s.st.DeleteDelivery(ctx, id)
}

func (s *timedStore) EachFile(ctx context.Context, fn func(store.File) error) (err error) {
	defer func(t time.Time) { s.observe("each_file", t, err) }(time.Now())
	return s.st.EachFile(ctx, fn)
}

func (s *timedStore) DamagedFiles(ctx context.Context, after string, limit int) (_ []store.File, err error) {
	defer func(t time.Time) { s.observe("damaged_files", t, err) }(time.Now())
	return s.st.DamagedFiles(ctx, after, limit)
}

func (s *timedStore) Count(ctx context.Context, key string, add int64, until time.Time) (_ int64, err error) {
	defer func(t time.Time) { s.observe("count", t, err) }(time.Now())
	return s.st.Count(ctx, key, add, until)
}

func (s *timedStore) Lock(ctx context.Context, name, holder string, until time.Time) (err error) {
	defer func(t time.Time) { s.observe("lock", t, err) }(time.Now())
	return s.st.Lock(ctx, name, holder, until)
}

func (s *timedStore) Renew(ctx context.Context, uploadKey, holder string, until time.Time) (err error) {
	defer func(t time.Time) { s.observe("renew", t, err) }(time.Now())
	return s.st.Renew(ctx, uploadKey, holder, until)
}

func (s *timedStore) PutJob(ctx context.Context, j store.Job) (_ store.Job, err error) {
	defer func(t time.Time) { s.observe("put_job", t, err) }(time.Now())
	return s.st.PutJob(ctx, j)
}

func (s *timedStore) Job(ctx context.Context, mirror string) (_ store.Job, err error) {
	defer func(t time.Time) { s.observe("job", t, err) }(time.Now())
	return s.st.Job(ctx, mirror)
}

func (s *timedStore) Jobs(ctx context.Context) (_ []store.Job, err error) {
	defer func(t time.Time) { s.observe("jobs", t, err) }(time.Now())
	return s.st.Jobs(ctx)
}

func (s *timedStore) DeleteJob(ctx context.Context, mirror string) (err error) {
	defer func(t time.Time) { s.observe("delete_job", t, err) }(time.Now())
	return s.st.DeleteJob(ctx, mirror)
}

func (s *timedStore) Deliveries(ctx context.Context) (_ []store.Delivery, err error) {
	defer func(t time.Time) { s.observe("deliveries", t, err) }(time.Now())
	return s.st.Deliveries(ctx)
}
