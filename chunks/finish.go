package chunks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/slug"
	"github.com/acestash/acestash/store"
)

func (s *Service) finishResult(ctx context.Context, sess store.Session) (Result, error) {
	f, err := s.finish(ctx, sess, store.File{})
	if err != nil {
		return Result{}, err
	}
	return Result{Name: f.Name, Total: f.Size, Done: true, File: f}, nil
}

// finish publishes a session that holds every byte, with the Alias and
// Expires of extra. It holds the session's lease throughout and reserves
// the slug in the session before it creates the record, so it is safe to
// repeat after a failure part way and to race: one file record results.
func (s *Service) finish(ctx context.Context, sess store.Session, extra store.File) (store.File, error) {
	// Publishing must not stop halfway because the client went away; each
	// mirror operation is still bounded by MirrorTimeout.
	ctx = context.WithoutCancel(ctx)
	sess, err := s.lease(ctx, sess)
	if err != nil {
		return store.File{}, err
	}
	failures := s.each(ctx, &sess, func(ctx context.Context, id string, m mirrors.Mirror) error {
		err := m.Complete(ctx, sess.Uploads[id], sess.Last[id])
		if errors.Is(err, mirrors.ErrNotFound) {
			// Completed by an earlier attempt? Then the object is there.
			if info, serr := m.Stat(ctx, sess.ObjectKey); serr == nil && info.Size == sess.Total {
				return nil
			}
		}
		if err != nil {
			return fmt.Errorf("complete upload: %w", err)
		}
		return nil
	})
	if err := s.drop(&sess, failures); err != nil {
		s.release(ctx, sess)
		return store.File{}, err
	}
	s.abortFailed(ctx, sess)
	sum, err := hashOf(sess.Hash)
	if err != nil {
		s.release(ctx, sess)
		return store.File{}, fmt.Errorf("chunks: session %s: %w", sess.UploadKey, err)
	}
	file := store.File{
		Name: sess.Name, Size: sess.Total, SHA256: sum, Type: sess.Type,
		Owner: sess.APIKey, ObjectKey: sess.ObjectKey,
		Mirrors: live(&sess), Status: store.StatusActive,
		PasswordHash: sess.PasswordHash, Created: s.cfg.Clock().UTC(),
		Alias: extra.Alias, Expires: extra.Expires,
	}
	for _, id := range sess.Mirrors {
		if _, failed := sess.Failed[id]; failed {
			file.Missing = append(file.Missing, id)
		}
	}
	sess, file, err = s.publish(ctx, sess, file)
	if err != nil {
		s.release(ctx, sess)
		return store.File{}, err
	}
	sess.Done = true
	sess.Lease, sess.LeaseUntil = "", time.Time{}
	sess.Updated = s.cfg.Clock().UTC()
	if _, err := s.cfg.Store.UpdateSession(ctx, sess); err != nil {
		// The file is published under the slug the session reserved; a
		// repeat finds it there.
		s.cfg.Log.Warn("mark session done", "upload_key", sess.UploadKey, "err", err)
	}
	return file, nil
}

// publish creates the file record under the slug the session reserves,
// reserving a fresh one first if needed, or finds the record an earlier
// attempt created for the same object.
func (s *Service) publish(ctx context.Context, sess store.Session, file store.File) (store.Session, store.File, error) {
	for range 8 {
		if sess.Slug == "" {
			sl, err := slug.New(s.cfg.SlugLength)
			if err != nil {
				return sess, store.File{}, err
			}
			sess.Slug = sl
			saved, err := s.cfg.Store.UpdateSession(ctx, sess)
			if err != nil {
				sess.Slug = "" // not reserved
				return sess, store.File{}, unavailable("cannot publish the file", err)
			}
			sess = saved
		}
		file.Slug = sess.Slug
		if sess.Name == "" {
			file.Name = sess.Slug + Extension(file.Type)
		}
		created, err := s.cfg.Store.CreateFile(ctx, file)
		if err == nil {
			return sess, created, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return sess, store.File{}, unavailable("cannot publish the file", err)
		}
		if old, err := s.cfg.Store.File(ctx, sess.Slug); err == nil && old.ObjectKey == sess.ObjectKey {
			return sess, old, nil
		}
		sess.Slug = "" // another file has it: draw again
	}
	return sess, store.File{}, errors.New("chunks: no free slug after 8 tries; raise slug_length")
}

// abortFailed discards, as far as the mirrors allow, what the mirrors
// dropped from an upload still hold of it.
func (s *Service) abortFailed(ctx context.Context, sess store.Session) {
	ups := map[string]mirrors.Upload{}
	for id := range sess.Failed {
		if up, ok := sess.Uploads[id]; ok {
			ups[id] = up
		}
	}
	s.abortAll(ctx, ups)
}

// Spec describes a file stored from one stream by Put.
type Spec struct {
	Account      store.Account
	Name         string
	Mirrors      []string // empty: the account's default mirrors
	Password     string
	MaxSize      int64     // 0: the account's maximum file size
	Expires      time.Time // zero: keep forever
	Alias        string    // optional second public id
	PasswordHash []byte    // used when Password is empty
}

// Put stores everything r yields as one file and publishes it. More than
// MaxSize bytes is a TooLarge error and publishes nothing. The stream is cut
// into pieces of StreamPart bytes, so memory and local disk use stay bounded.
func (s *Service) Put(ctx context.Context, spec Spec, r io.Reader) (store.File, error) {
	maxSize := spec.MaxSize
	if maxSize <= 0 {
		maxSize = s.MaxFileSize(spec.Account)
	}
	ids := spec.Mirrors
	if len(ids) == 0 {
		ids = s.DefaultMirrors(spec.Account)
	}
	sess, err := s.Issue(ctx, spec.Account)
	if err != nil {
		return store.File{}, err
	}
	if err := s.start(&sess, spec.Account, spec.Name, ids, spec.Password); err != nil {
		if derr := s.cfg.Store.DeleteSession(context.WithoutCancel(ctx), sess.UploadKey); derr != nil {
			s.cfg.Log.Warn("delete unused session", "upload_key", sess.UploadKey, "err", derr)
		}
		return store.File{}, err
	}
	if spec.Password == "" {
		sess.PasswordHash = spec.PasswordHash
	}
	file, err := s.put(ctx, sess, r, maxSize, store.File{Alias: spec.Alias, Expires: spec.Expires})
	if err != nil {
		s.discard(context.WithoutCancel(ctx), sess.UploadKey)
		return store.File{}, err
	}
	return file, nil
}

func (s *Service) put(ctx context.Context, sess store.Session, r io.Reader, maxSize int64, extra store.File) (store.File, error) {
	for {
		// Read one byte past the size limit, so going over it is seen
		// before anything past it is written.
		piece := min(s.cfg.StreamPart, maxSize-sess.Held+1)
		st := step{base: sess.Held, start: sess.Held, end: sess.Held, total: -1,
			limit: piece, stream: true, max: maxSize}
		next, err := s.advance(ctx, sess, st, io.LimitReader(r, piece))
		if err != nil {
			return store.File{}, err
		}
		n := next.Held - sess.Held
		sess = next
		if n < piece {
			break // the stream has ended
		}
	}
	sess.Total = sess.Held
	return s.finish(ctx, sess, extra)
}

// discard aborts a session's mirror uploads and forgets it.
func (s *Service) discard(ctx context.Context, uploadKey string) {
	sess, err := s.cfg.Store.Session(ctx, uploadKey)
	if err != nil {
		return
	}
	if !sess.Done {
		s.abortAll(ctx, sess.Uploads)
	}
	if err := s.cfg.Store.DeleteSession(ctx, uploadKey); err != nil {
		s.cfg.Log.Warn("delete session", "upload_key", uploadKey, "err", err)
	}
}

// Reap abandons uploads idle for longer than idle: their mirror uploads are
// aborted and their sessions deleted. It returns how many it reaped.
func (s *Service) Reap(ctx context.Context, idle time.Duration) (int, error) {
	old, err := s.cfg.Store.IdleSessions(ctx, s.cfg.Clock().Add(-idle), 100)
	if err != nil {
		return 0, fmt.Errorf("chunks: list idle sessions: %w", err)
	}
	for _, sess := range old {
		s.discard(ctx, sess.UploadKey)
	}
	return len(old), nil
}

// CleanName makes a client-supplied file name safe to store and show: the
// last path element, without control characters, at most 255 bytes.
func CleanName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base("/" + name)
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, "\uFFFD"))
	name = strings.TrimSpace(name)
	if name == "/" || name == "." || name == ".." {
		name = ""
	}
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}
