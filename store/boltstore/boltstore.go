// Package boltstore is a store.Store in one bbolt file, for a single node.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/acestash/acestash/store"
)

// Bucket names. Index buckets hold keys only; their keys start with a
// timeKey so that a cursor walks them in time order.
const (
	bucketAccounts = "accounts"  // api key -> Account JSON
	bucketUsers    = "users"     // user id -> api key
	bucketSessions = "sessions"  // upload key -> Session JSON
	bucketIdle     = "idle"      // timeKey(Updated) + upload key, started sessions only
	bucketLapses   = "lapses"    // timeKey(Expires) + upload key, unstarted sessions only
	bucketFiles    = "files"     // slug -> File JSON; its sequence numbers file IDs
	bucketAliases  = "aliases"   // alias -> slug
	bucketExpiry   = "expiry"    // timeKey(Expires) + slug, active files with an Expires
	bucketOwners   = "owners"    // one bucket per owner: timeKey(Created) + slug
	bucketDamaged  = "damaged"   // slug, files with a Missing mirror
	bucketLocks    = "locks"     // name -> lock JSON
	bucketCounts   = "counts"    // key -> count JSON
	bucketUsage    = "usage"     // ownerName(owner) -> store.Usage JSON of its active files
	bucketHooks    = "hooks"     // delivery id -> store.Delivery JSON
	bucketHooksDue = "hooks-due" // timeKey(Due) + delivery id
	bucketJobs     = "jobs"      // mirror id -> store.Job JSON
)

// purgeBatch is how many lapsed sessions CreateSession removes at most.
const purgeBatch = 64

// Store is a store.Store backed by a bbolt file.
type Store struct {
	db    *bolt.DB
	clock store.Clock
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store file at path. Only one process may have
// the file open; Open fails after a second if another holds it.
func Open(path string, clock store.Clock) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store %s is in use (is an acestash server running with this data_dir?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		indexed := tx.Bucket([]byte(bucketOwners)) != nil
		counted := tx.Bucket([]byte(bucketUsage)) != nil
		for _, name := range []string{bucketAccounts, bucketUsers, bucketSessions, bucketIdle,
			bucketLapses, bucketFiles, bucketAliases, bucketExpiry, bucketOwners,
			bucketDamaged, bucketLocks, bucketCounts, bucketUsage, bucketHooks, bucketHooksDue, bucketJobs} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		if indexed && counted {
			return nil
		}
		// A store written before the owner index or the usage counters.
		return bucket(tx, bucketFiles).ForEach(func(k, v []byte) error {
			f, err := get[store.File](bucket(tx, bucketFiles), string(k), "file")
			if err != nil {
				return err
			}
			if !indexed {
				if err := indexOwner(tx, f); err != nil {
					return err
				}
			}
			if !counted {
				return tally(tx, f, 1)
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db, clock: clock}, nil
}

// Ping opens and ends a read transaction: it fails once the store is
// closed.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// bucket returns the named bucket, which Open created.
func bucket(tx *bolt.Tx, name string) *bolt.Bucket { return tx.Bucket([]byte(name)) }

// timeKey encodes t so that byte order is time order: the Unix seconds with
// the sign bit flipped, then the nanoseconds, both big-endian.
func timeKey(t time.Time, suffix string) []byte {
	k := make([]byte, 12, 12+len(suffix))
	binary.BigEndian.PutUint64(k, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(k[8:], uint32(t.Nanosecond()))
	return append(k, suffix...)
}

func get[T any](b *bolt.Bucket, key string, what string) (T, error) {
	var v T
	data := b.Get([]byte(key))
	if data == nil {
		return v, fmt.Errorf("%s %q: %w", what, key, store.ErrNotFound)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("decode %s %q: %w", what, key, err)
	}
	return v, nil
}

func put(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	if err := b.Put([]byte(key), data); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

// view and update run fn in a transaction unless ctx is already done.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	return s.db.Update(fn)
}

// PutAccount creates or replaces the account with a.APIKey; an account
// whose settings do not pass Settings.Validate is refused.
func (s *Store) PutAccount(ctx context.Context, a store.Account) error {
	if err := a.Settings().Validate(nil); err != nil {
		return fmt.Errorf("put account %q: %w", a.APIKey, err)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		accounts, users := bucket(tx, bucketAccounts), bucket(tx, bucketUsers)
		old, err := get[store.Account](accounts, a.APIKey, "account")
		switch {
		case err == nil:
			if old.UserID != "" && old.UserID != a.UserID &&
				string(users.Get([]byte(old.UserID))) == a.APIKey {
				if err := users.Delete([]byte(old.UserID)); err != nil {
					return fmt.Errorf("put account: %w", err)
				}
			}
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("put account: %w", err)
		}
		if a.UserID != "" {
			if err := users.Put([]byte(a.UserID), []byte(a.APIKey)); err != nil {
				return fmt.Errorf("put account: %w", err)
			}
		}
		if err := put(accounts, a.APIKey, a); err != nil {
			return fmt.Errorf("put account: %w", err)
		}
		return nil
	})
}

// DeleteAccount removes the account with the API key.
func (s *Store) DeleteAccount(ctx context.Context, apiKey string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		accounts, users := bucket(tx, bucketAccounts), bucket(tx, bucketUsers)
		old, err := get[store.Account](accounts, apiKey, "account")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		if old.UserID != "" && string(users.Get([]byte(old.UserID))) == apiKey {
			if err := users.Delete([]byte(old.UserID)); err != nil {
				return fmt.Errorf("delete account: %w", err)
			}
		}
		if err := accounts.Delete([]byte(apiKey)); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		return nil
	})
}

// Account returns the account with the API key.
func (s *Store) Account(ctx context.Context, apiKey string) (store.Account, error) {
	var a store.Account
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		a, err = get[store.Account](bucket(tx, bucketAccounts), apiKey, "account")
		return err
	})
	return a, err
}

// AccountByUserID returns the account with the public user id.
func (s *Store) AccountByUserID(ctx context.Context, userID string) (store.Account, error) {
	var a store.Account
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		key := bucket(tx, bucketUsers).Get([]byte(userID))
		if key == nil || userID == "" {
			return fmt.Errorf("account of user %q: %w", userID, store.ErrNotFound)
		}
		a, err = get[store.Account](bucket(tx, bucketAccounts), string(key), "account")
		return err
	})
	return a, err
}

// Accounts returns every account, ordered by API key.
func (s *Store) Accounts(ctx context.Context) ([]store.Account, error) {
	var list []store.Account
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return bucket(tx, bucketAccounts).ForEach(func(k, v []byte) error {
			var a store.Account
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("decode account %q: %w", k, err)
			}
			list = append(list, a)
			return nil
		})
	})
	return list, err
}

// lapsed reports whether the session is gone by now: not started and past
// its Expires.
func lapsed(sess store.Session, now time.Time) bool {
	return !sess.Started && !now.Before(sess.Expires)
}

// putSession writes sess and its index entries, replacing old (nil if none).
func putSession(tx *bolt.Tx, old *store.Session, sess store.Session) error {
	idle, lapses := bucket(tx, bucketIdle), bucket(tx, bucketLapses)
	if old != nil {
		if err := unindexSession(tx, *old); err != nil {
			return err
		}
	}
	if sess.Started {
		if err := idle.Put(timeKey(sess.Updated, sess.UploadKey), nil); err != nil {
			return fmt.Errorf("index session: %w", err)
		}
	} else if err := lapses.Put(timeKey(sess.Expires, sess.UploadKey), nil); err != nil {
		return fmt.Errorf("index session: %w", err)
	}
	return put(bucket(tx, bucketSessions), sess.UploadKey, sess)
}

func unindexSession(tx *bolt.Tx, sess store.Session) error {
	var err error
	if sess.Started {
		err = bucket(tx, bucketIdle).Delete(timeKey(sess.Updated, sess.UploadKey))
	} else {
		err = bucket(tx, bucketLapses).Delete(timeKey(sess.Expires, sess.UploadKey))
	}
	if err != nil {
		return fmt.Errorf("unindex session: %w", err)
	}
	return nil
}

// deleteSession removes sess and its index entries.
func deleteSession(tx *bolt.Tx, sess store.Session) error {
	if err := unindexSession(tx, sess); err != nil {
		return err
	}
	if err := bucket(tx, bucketSessions).Delete([]byte(sess.UploadKey)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// purgeLapsed deletes up to purgeBatch sessions that lapsed by now.
func purgeLapsed(tx *bolt.Tx, now time.Time) error {
	sessions := bucket(tx, bucketSessions)
	limit := timeKey(now, "")
	var keys []string
	c := bucket(tx, bucketLapses).Cursor()
	for k, _ := c.First(); k != nil && len(keys) < purgeBatch; k, _ = c.Next() {
		if bytes.Compare(k[:12], limit) > 0 {
			break
		}
		keys = append(keys, string(k[12:]))
	}
	for _, key := range keys {
		sess, err := get[store.Session](sessions, key, "session")
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		if lapsed(sess, now) {
			if err := deleteSession(tx, sess); err != nil {
				return fmt.Errorf("purge: %w", err)
			}
		}
	}
	return nil
}

// CreateSession stores a new session with Version 1; ErrExists if the key is
// taken by a session that has not lapsed.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	now := s.clock()
	sess.Version = 1
	return s.update(ctx, func(tx *bolt.Tx) error {
		if err := purgeLapsed(tx, now); err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		old, err := get[store.Session](bucket(tx, bucketSessions), sess.UploadKey, "session")
		var prev *store.Session
		switch {
		case err == nil && !lapsed(old, now):
			return fmt.Errorf("session %q: %w", sess.UploadKey, store.ErrExists)
		case err == nil:
			prev = &old
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("create session: %w", err)
		}
		if err := putSession(tx, prev, sess); err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		return nil
	})
}

// session reads a live session.
func (s *Store) session(tx *bolt.Tx, key string, now time.Time) (store.Session, error) {
	sess, err := get[store.Session](bucket(tx, bucketSessions), key, "session")
	if err == nil && lapsed(sess, now) {
		return store.Session{}, fmt.Errorf("session %q lapsed: %w", key, store.ErrNotFound)
	}
	return sess, err
}

// Session returns the session of an upload key.
func (s *Store) Session(ctx context.Context, uploadKey string) (store.Session, error) {
	now := s.clock()
	var sess store.Session
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		sess, err = s.session(tx, uploadKey, now)
		return err
	})
	return sess, err
}

// UpdateSession replaces the session if its Version is unchanged.
func (s *Store) UpdateSession(ctx context.Context, sess store.Session) (store.Session, error) {
	now := s.clock()
	err := s.update(ctx, func(tx *bolt.Tx) error {
		old, err := s.session(tx, sess.UploadKey, now)
		if err != nil {
			return fmt.Errorf("update session: %w", err)
		}
		if old.Version != sess.Version {
			return fmt.Errorf("session %q is at version %d, not %d: %w",
				sess.UploadKey, old.Version, sess.Version, store.ErrConflict)
		}
		sess.Version++
		if err := putSession(tx, &old, sess); err != nil {
			return fmt.Errorf("update session: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.Session{}, err
	}
	return sess, nil
}

// Lease takes the session's lease for holder until the time until.
func (s *Store) Lease(ctx context.Context, uploadKey, holder string, until time.Time) (store.Session, error) {
	now := s.clock()
	var sess store.Session
	err := s.update(ctx, func(tx *bolt.Tx) error {
		old, err := s.session(tx, uploadKey, now)
		if err != nil {
			return fmt.Errorf("lease session: %w", err)
		}
		sess = old
		if old.Lease != "" && old.Lease != holder && now.Before(old.LeaseUntil) {
			return fmt.Errorf("session %q: %w", uploadKey, store.ErrLeased)
		}
		sess.Lease, sess.LeaseUntil = holder, until
		if !sess.Started && sess.Expires.Before(until) {
			sess.Expires = until
		}
		sess.Version++
		if err := putSession(tx, &old, sess); err != nil {
			return fmt.Errorf("lease session: %w", err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrLeased) {
		return store.Session{}, err
	}
	return sess, err
}

// Renew moves the end of holder's lease without changing the Version.
func (s *Store) Renew(ctx context.Context, uploadKey, holder string, until time.Time) error {
	now := s.clock()
	return s.update(ctx, func(tx *bolt.Tx) error {
		old, err := s.session(tx, uploadKey, now)
		if err != nil {
			return fmt.Errorf("renew lease: %w", err)
		}
		if old.Lease != holder {
			return fmt.Errorf("session %q: %w", uploadKey, store.ErrLeased)
		}
		sess := old
		sess.LeaseUntil = until
		if !sess.Started && sess.Expires.Before(until) {
			sess.Expires = until
		}
		if err := putSession(tx, &old, sess); err != nil {
			return fmt.Errorf("renew lease: %w", err)
		}
		return nil
	})
}

// DeleteSession removes the session; a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, uploadKey string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		old, err := get[store.Session](bucket(tx, bucketSessions), uploadKey, "session")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
		return deleteSession(tx, old)
	})
}

// IdleSessions returns up to limit started sessions last updated before t,
// least recently updated first.
func (s *Store) IdleSessions(ctx context.Context, t time.Time, limit int) ([]store.Session, error) {
	var list []store.Session
	err := s.view(ctx, func(tx *bolt.Tx) error {
		sessions := bucket(tx, bucketSessions)
		end := timeKey(t, "")
		c := bucket(tx, bucketIdle).Cursor()
		for k, _ := c.First(); k != nil && len(list) < limit; k, _ = c.Next() {
			if bytes.Compare(k[:12], end) >= 0 {
				break
			}
			sess, err := get[store.Session](sessions, string(k[12:]), "session")
			if err != nil {
				return fmt.Errorf("idle sessions: %w", err)
			}
			list = append(list, sess)
		}
		return nil
	})
	return list, err
}

// expiring reports whether f belongs in the expiry index.
func expiring(f store.File) bool {
	return f.Status == store.StatusActive && !f.Expires.IsZero()
}

// CreateFile publishes f, assigning f.ID.
func (s *Store) CreateFile(ctx context.Context, f store.File) (store.File, error) {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		files, aliases := bucket(tx, bucketFiles), bucket(tx, bucketAliases)
		if files.Get([]byte(f.Slug)) != nil {
			return fmt.Errorf("file %q: %w", f.Slug, store.ErrExists)
		}
		if f.Alias != "" {
			if aliases.Get([]byte(f.Alias)) != nil {
				return fmt.Errorf("alias %q: %w", f.Alias, store.ErrExists)
			}
			if err := aliases.Put([]byte(f.Alias), []byte(f.Slug)); err != nil {
				return fmt.Errorf("create file: %w", err)
			}
		}
		if f.ID == 0 {
			f.ID = store.NewFileID()
		}
		if err := indexOwner(tx, f); err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		if err := tally(tx, f, 1); err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		if err := indexDamaged(tx, f); err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		if expiring(f) {
			if err := bucket(tx, bucketExpiry).Put(timeKey(f.Expires, f.Slug), nil); err != nil {
				return fmt.Errorf("create file: %w", err)
			}
		}
		if err := put(files, f.Slug, f); err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.File{}, err
	}
	return f, nil
}

// File returns the file with the slug.
func (s *Store) File(ctx context.Context, slug string) (store.File, error) {
	var f store.File
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		f, err = get[store.File](bucket(tx, bucketFiles), slug, "file")
		return err
	})
	return f, err
}

// Files returns the files with the given slugs; missing ones are absent.
func (s *Store) Files(ctx context.Context, slugs []string) (map[string]store.File, error) {
	m := make(map[string]store.File, len(slugs))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		files := bucket(tx, bucketFiles)
		for _, slug := range slugs {
			f, err := get[store.File](files, slug, "file")
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			m[slug] = f
		}
		return nil
	})
	return m, err
}

// FileByAlias returns the file with the alias.
func (s *Store) FileByAlias(ctx context.Context, alias string) (store.File, error) {
	var f store.File
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		slug := bucket(tx, bucketAliases).Get([]byte(alias))
		if slug == nil || alias == "" {
			return fmt.Errorf("alias %q: %w", alias, store.ErrNotFound)
		}
		f, err = get[store.File](bucket(tx, bucketFiles), string(slug), "file")
		return err
	})
	return f, err
}

// UpdateFile replaces the stored file with f.Slug; ErrNotFound if absent,
// ErrExists if f.Alias changed to an alias another file has.
func (s *Store) UpdateFile(ctx context.Context, f store.File) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		files, aliases, expiry := bucket(tx, bucketFiles), bucket(tx, bucketAliases), bucket(tx, bucketExpiry)
		old, err := get[store.File](files, f.Slug, "file")
		if err != nil {
			return fmt.Errorf("update file: %w", err)
		}
		if old.Status != store.StatusActive && f.Status == store.StatusActive {
			return fmt.Errorf("file %q was taken down: %w", f.Slug, store.ErrConflict)
		}
		if old.Alias != f.Alias {
			if f.Alias != "" {
				if aliases.Get([]byte(f.Alias)) != nil {
					return fmt.Errorf("alias %q: %w", f.Alias, store.ErrExists)
				}
				if err := aliases.Put([]byte(f.Alias), []byte(f.Slug)); err != nil {
					return fmt.Errorf("update file: %w", err)
				}
			}
			if old.Alias != "" {
				if err := aliases.Delete([]byte(old.Alias)); err != nil {
					return fmt.Errorf("update file: %w", err)
				}
			}
		}
		if old.Owner != f.Owner || !old.Created.Equal(f.Created) {
			if err := unindexOwner(tx, old); err != nil {
				return fmt.Errorf("update file: %w", err)
			}
			if err := indexOwner(tx, f); err != nil {
				return fmt.Errorf("update file: %w", err)
			}
		}
		if expiring(old) {
			if err := expiry.Delete(timeKey(old.Expires, old.Slug)); err != nil {
				return fmt.Errorf("update file: %w", err)
			}
		}
		if err := tally(tx, old, -1); err != nil {
			return fmt.Errorf("update file: %w", err)
		}
		if err := tally(tx, f, 1); err != nil {
			return fmt.Errorf("update file: %w", err)
		}
		if expiring(f) {
			if err := expiry.Put(timeKey(f.Expires, f.Slug), nil); err != nil {
				return fmt.Errorf("update file: %w", err)
			}
		}
		if err := indexDamaged(tx, f); err != nil {
			return fmt.Errorf("update file: %w", err)
		}
		if err := put(files, f.Slug, f); err != nil {
			return fmt.Errorf("update file: %w", err)
		}
		return nil
	})
}

// DeleteFile removes the file and its alias; a missing file is not an error.
func (s *Store) DeleteFile(ctx context.Context, slug string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		files := bucket(tx, bucketFiles)
		old, err := get[store.File](files, slug, "file")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete file: %w", err)
		}
		if old.Alias != "" {
			if err := bucket(tx, bucketAliases).Delete([]byte(old.Alias)); err != nil {
				return fmt.Errorf("delete file: %w", err)
			}
		}
		if expiring(old) {
			if err := bucket(tx, bucketExpiry).Delete(timeKey(old.Expires, old.Slug)); err != nil {
				return fmt.Errorf("delete file: %w", err)
			}
		}
		if err := unindexOwner(tx, old); err != nil {
			return fmt.Errorf("delete file: %w", err)
		}
		if err := tally(tx, old, -1); err != nil {
			return fmt.Errorf("delete file: %w", err)
		}
		if err := bucket(tx, bucketDamaged).Delete([]byte(slug)); err != nil {
			return fmt.Errorf("delete file: %w", err)
		}
		if err := files.Delete([]byte(slug)); err != nil {
			return fmt.Errorf("delete file: %w", err)
		}
		return nil
	})
}

// tally adds an active file to its owner's usage (sign 1) or takes it
// away (sign -1); other files are not counted.
func tally(tx *bolt.Tx, f store.File, sign int64) error {
	if f.Status != store.StatusActive {
		return nil
	}
	b, key := bucket(tx, bucketUsage), string(ownerName(f.Owner))
	u, err := get[store.Usage](b, key, "usage")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	u.Bytes += sign * f.Size
	u.Files += sign
	if u.Files <= 0 {
		return b.Delete([]byte(key))
	}
	return put(b, key, u)
}

// Usage returns what the owner's active files take.
func (s *Store) Usage(ctx context.Context, owner string) (store.Usage, error) {
	var u store.Usage
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		u, err = get[store.Usage](bucket(tx, bucketUsage), string(ownerName(owner)), "usage")
		if errors.Is(err, store.ErrNotFound) {
			u, err = store.Usage{}, nil
		}
		return err
	})
	return u, err
}

// ownerName names an owner's index bucket; bolt refuses an empty name.
func ownerName(owner string) []byte { return []byte("o" + owner) }

// indexOwner adds f to its owner's index.
func indexOwner(tx *bolt.Tx, f store.File) error {
	owner, err := bucket(tx, bucketOwners).CreateBucketIfNotExists(ownerName(f.Owner))
	if err != nil {
		return fmt.Errorf("owner index: %w", err)
	}
	return owner.Put(timeKey(f.Created, f.Slug), nil)
}

// unindexOwner removes f from its owner's index.
func unindexOwner(tx *bolt.Tx, f store.File) error {
	owner := bucket(tx, bucketOwners).Bucket(ownerName(f.Owner))
	if owner == nil {
		return nil
	}
	if err := owner.Delete(timeKey(f.Created, f.Slug)); err != nil {
		return fmt.Errorf("owner index: %w", err)
	}
	return nil
}

// OwnerFiles returns a page of the owner's files, newest first.
func (s *Store) OwnerFiles(ctx context.Context, owner string, offset, limit int) ([]store.File, int, error) {
	var list []store.File
	total := 0
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := bucket(tx, bucketOwners).Bucket(ownerName(owner))
		if b == nil {
			return nil
		}
		files := bucket(tx, bucketFiles)
		c := b.Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			total++
			if total <= offset || len(list) >= limit {
				continue
			}
			f, err := get[store.File](files, string(k[12:]), "file")
			if err != nil {
				return fmt.Errorf("owner %q: %w", owner, err)
			}
			list = append(list, f)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("owner files: %w", err)
	}
	return list, total, nil
}

// ExpiredFiles returns up to limit active files whose Expires is before t,
// earliest first.
func (s *Store) ExpiredFiles(ctx context.Context, t time.Time, limit int) ([]store.File, error) {
	var list []store.File
	err := s.view(ctx, func(tx *bolt.Tx) error {
		files := bucket(tx, bucketFiles)
		end := timeKey(t, "")
		c := bucket(tx, bucketExpiry).Cursor()
		for k, _ := c.First(); k != nil && len(list) < limit; k, _ = c.Next() {
			if bytes.Compare(k[:12], end) >= 0 {
				break
			}
			f, err := get[store.File](files, string(k[12:]), "file")
			if err != nil {
				return fmt.Errorf("expired files: %w", err)
			}
			list = append(list, f)
		}
		return nil
	})
	return list, err
}

// indexDamaged brings the damaged index in line with f.
func indexDamaged(tx *bolt.Tx, f store.File) error {
	if len(f.Missing) > 0 {
		return bucket(tx, bucketDamaged).Put([]byte(f.Slug), nil)
	}
	return bucket(tx, bucketDamaged).Delete([]byte(f.Slug))
}

// DamagedFiles returns up to limit files with a Missing mirror after the
// slug after, in slug order.
func (s *Store) DamagedFiles(ctx context.Context, after string, limit int) ([]store.File, error) {
	var list []store.File
	err := s.view(ctx, func(tx *bolt.Tx) error {
		files := bucket(tx, bucketFiles)
		c := bucket(tx, bucketDamaged).Cursor()
		k, _ := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, _ = c.Next()
		}
		for ; k != nil && len(list) < limit; k, _ = c.Next() {
			f, err := get[store.File](files, string(k), "file")
			if err != nil {
				return fmt.Errorf("damaged files: %w", err)
			}
			list = append(list, f)
		}
		return nil
	})
	return list, err
}

// lock is a named lock as stored.
type lock struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Lock gives the named lock to holder until the time until.
func (s *Store) Lock(ctx context.Context, name, holder string, until time.Time) error {
	now := s.clock()
	return s.update(ctx, func(tx *bolt.Tx) error {
		locks := bucket(tx, bucketLocks)
		old, err := get[lock](locks, name, "lock")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("lock %q: %w", name, err)
		}
		if err == nil && old.Holder != holder && now.Before(old.Until) {
			return fmt.Errorf("lock %q: %w", name, store.ErrLeased)
		}
		if err := put(locks, name, lock{Holder: holder, Until: until}); err != nil {
			return fmt.Errorf("lock %q: %w", name, err)
		}
		return nil
	})
}

// EachFile calls fn for every file, in slug order, reading a page of them
// at a time so that fn runs outside the store's transactions.
func (s *Store) EachFile(ctx context.Context, fn func(store.File) error) error {
	after := ""
	for {
		var page []store.File
		err := s.view(ctx, func(tx *bolt.Tx) error {
			c := bucket(tx, bucketFiles).Cursor()
			k, v := c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
			for ; k != nil && len(page) < 1000; k, v = c.Next() {
				var f store.File
				if err := json.Unmarshal(v, &f); err != nil {
					return fmt.Errorf("decode file %q: %w", k, err)
				}
				page = append(page, f)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("each file: %w", err)
		}
		for _, f := range page {
			if err := fn(f); err != nil {
				return err
			}
		}
		if len(page) < 1000 {
			return nil
		}
		after = page[len(page)-1].Slug
	}
}

// count is a counter as stored.
type count struct {
	N     int64     `json:"n"`
	Until time.Time `json:"until"`
}

// countPurge is how many counters a new one looks at, to remove lapsed ones.
const countPurge = 8

// Count adds add to the counter under key.
func (s *Store) Count(ctx context.Context, key string, add int64, until time.Time) (int64, error) {
	now := s.clock()
	if add == 0 {
		return s.readCount(ctx, key, now)
	}
	var n int64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		counts := bucket(tx, bucketCounts)
		c, err := get[count](counts, key, "count")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err != nil || !now.Before(c.Until) {
			c = count{Until: until}
			if err := purgeCounts(counts, now); err != nil {
				return err
			}
		}
		c.N += add
		n = c.N
		return put(counts, key, c)
	})
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", key, err)
	}
	return n, nil
}

// readCount reads a counter in a read-only transaction: 0 if it lapsed or
// never began.
func (s *Store) readCount(ctx context.Context, key string, now time.Time) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c, err := get[count](bucket(tx, bucketCounts), key, "count")
		if err == nil && now.Before(c.Until) {
			n = c.N
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", key, err)
	}
	return n, nil
}

// purgeCounts removes lapsed counters among the first few from a random
// place, so that lapsed ones do not pile up.
func purgeCounts(counts *bolt.Bucket, now time.Time) error {
	var start [8]byte
	binary.BigEndian.PutUint64(start[:], rand.Uint64())
	c := counts.Cursor()
	k, v := c.Seek(start[:])
	var lapsed [][]byte
	for i := 0; i < countPurge && k != nil; i++ {
		var cnt count
		if json.Unmarshal(v, &cnt) == nil && !now.Before(cnt.Until) {
			lapsed = append(lapsed, bytes.Clone(k))
		}
		k, v = c.Next()
	}
	for _, k := range lapsed {
		if err := counts.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
