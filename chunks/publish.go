package chunks

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/slug"
	"github.com/acestash/acestash/store"
)

// Publishing: once every byte of an upload is held, its mirror uploads are
// completed and the file record is created under the slug the session
// reserved. A session whose record exists is finished; nothing else marks
// it, so publishing costs no write to the session.

// finish completes the uploads of a session that holds every byte and
// whose lease it holds, then publishes the file. It is safe to repeat after
// a failure part way: one file record results.
func (s *Service) finish(ctx context.Context, a store.Account, sess store.Session) (Result, error) {
	// Publishing must not stop halfway because the client went away; each
	// mirror operation is still bounded by MirrorTimeout.
	ctx = context.WithoutCancel(ctx)
	if err := s.completeAll(ctx, &sess, sess.Last); err != nil {
		s.release(ctx, sess, true)
		return Result{}, err
	}
	s.abortFailed(ctx, sess)
	f, err := s.record(sess)
	if err == nil {
		f, err = s.publish(ctx, a, &sess, f, true)
	}
	if err != nil {
		if !isOverQuota(err) { // else publish dropped the upload
			s.release(ctx, sess, true)
		}
		return Result{}, err
	}
	return Result{Name: f.Name, Total: f.Size, Done: true, File: f}, nil
}

// completeAll completes the upload on every live mirror of the session at
// last, dropping those that fail while the quorum holds. An upload that a
// mirror no longer knows counts as complete if its object has the size.
func (s *Service) completeAll(ctx context.Context, sess *store.Session, last map[string]mirrors.Part) error {
	failures := s.each(ctx, sess, func(ctx context.Context, id string, m mirrors.Mirror, _ *pulse) error {
		err := m.Complete(ctx, sess.Uploads[id], last[id])
		if errors.Is(err, mirrors.ErrNotFound) {
			// Completed by an earlier attempt? Then the object is there.
			if info, serr := m.Stat(ctx, sess.ObjectKey); serr == nil && info.Size == last[id].Size {
				return nil
			}
		}
		if err != nil {
			return fmt.Errorf("complete upload: %w", err)
		}
		return nil
	})
	return s.drop(ctx, sess, failures)
}

// publishWhole publishes the file of a session whose objects are in place
// and whose lease it holds, then records the session as done.
func (s *Service) publishWhole(ctx context.Context, a store.Account, sess store.Session, w *write) (Result, error) {
	ctx = context.WithoutCancel(ctx)
	f, err := s.record(sess)
	if err == nil {
		f, err = s.publish(ctx, a, &sess, f, true)
	}
	if err != nil {
		if mayUndo(err) {
			s.undo(ctx, &sess, w, true)
		}
		if !isOverQuota(err) { // else publish dropped the upload
			s.release(ctx, sess, true)
		}
		return Result{}, err
	}
	sess.Done = true
	sess.Lease, sess.LeaseUntil = "", time.Time{}
	if _, err := s.cfg.Store.UpdateSession(ctx, sess); err != nil {
		// The file is published under the session's slug; a repeat finds it.
		s.cfg.Log.WarnContext(ctx, "mark session done", "upload_key", sess.UploadKey, "err", err)
	}
	return Result{Name: f.Name, Total: f.Size, Done: true, File: f}, nil
}

// record returns the file record of a session that holds every byte.
func (s *Service) record(sess store.Session) (store.File, error) {
	sum, err := hashOf(sess.Hash)
	if err != nil {
		return store.File{}, fmt.Errorf("chunks: session %s: %w", sess.UploadKey, err)
	}
	f := store.File{
		Name: sess.Name, Size: sess.Total, SHA256: sum, Type: sess.Type,
		Owner: sess.APIKey, ObjectKey: sess.ObjectKey, UploadKey: sess.UploadKey,
		Mirrors: live(&sess), Status: store.StatusActive,
		PasswordHash: sess.PasswordHash, Created: s.cfg.Clock().UTC(),
		Expires: sess.FileExpires, MaxDownloads: sess.MaxDownloads,
	}
	for _, id := range sess.Mirrors {
		if _, failed := sess.Failed[id]; failed {
			f.Missing = append(f.Missing, id)
		}
	}
	return f, nil
}

// publish creates the file record under the session's slug, drawing
// another if a different file has it; a stored session keeps the slug it
// will use, so a repeat after a failure finds the record this one made.
// Where the account has quotas, the file must fit in what they leave once
// every other upload of the account published before it; if it does not,
// the upload is dropped whole (its objects, and its session when stored)
// and the error is OverQuota.
func (s *Service) publish(ctx context.Context, a store.Account, sess *store.Session, file store.File, stored bool) (store.File, error) {
	if a.QuotaBytes > 0 || a.QuotaFiles > 0 {
		unlock, err := s.lockQuota(ctx, a)
		if err != nil {
			return store.File{}, err
		}
		defer unlock()
		if old, done, err := s.publishedBefore(ctx, *sess, file); done || err != nil {
			return old, err
		}
		if _, _, err := s.capped(ctx, a, file.Size, 0, math.MaxInt64); err != nil {
			if !isOverQuota(err) {
				return store.File{}, err
			}
			// A late write of an earlier attempt may have published it
			// meanwhile; then its bytes are that file's.
			if old, done, perr := s.publishedBefore(ctx, *sess, file); done || perr != nil {
				return old, perr
			}
			unlock() // the refusal is decided; the mirrors may be slow
			s.dropUpload(ctx, *sess, stored)
			return store.File{}, err
		}
	}
	for range 8 {
		if sess.Slug == "" {
			sl, err := slug.New(s.cfg.SlugLength)
			if err != nil {
				return store.File{}, err
			}
			sess.Slug = sl
			if stored {
				sess.LeaseUntil = s.until()
				saved, err := s.cfg.Store.UpdateSession(ctx, *sess)
				if err != nil {
					return store.File{}, unavailable("cannot publish the file", err)
				}
				*sess = saved
			}
		}
		file.Slug = sess.Slug
		if sess.Name == "" {
			file.Name = sess.Slug + Extension(file.Type)
		}
		created, err := s.cfg.Store.CreateFile(ctx, file)
		if err == nil {
			s.notify(ctx, EventCompleted, created)
			return created, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return s.lostReply(ctx, *sess, file, err)
		}
		if old, err := s.cfg.Store.File(ctx, sess.Slug); err == nil {
			if mine, err := sameUpload(old, file); mine {
				return old, nil // an earlier attempt published it
			} else if err != nil {
				return store.File{}, err
			}
		}
		sess.Slug = "" // another file has it: draw again
	}
	return store.File{}, errors.New("chunks: no free slug after 8 tries; raise slug_length")
}

// errMaybePublished marks a failed publish whose record may exist all the
// same: its objects must be kept.
var errMaybePublished = errors.New("the file may have been published")

// lostReply answers a CreateFile that failed: the store may have created
// the record and lost only its reply. A record that is there, with the
// file's objects, is the file published; one that cannot be looked for
// leaves the error marked errMaybePublished, so no caller deletes objects
// a record may point to.
func (s *Service) lostReply(ctx context.Context, sess store.Session, file store.File, err error) (store.File, error) {
	old, _, perr := s.published(ctx, sess)
	if perr != nil {
		return store.File{}, unavailable("cannot publish the file", errors.Join(err, errMaybePublished))
	}
	if mine, _ := sameUpload(old, file); mine {
		s.notify(ctx, EventCompleted, old)
		return old, nil
	}
	return store.File{}, unavailable("cannot publish the file", err)
}

// mayUndo reports whether a failed publish left the upload's objects to
// its caller to delete: not when the quota dropped the upload itself, nor
// when a record may point to them.
func mayUndo(err error) bool {
	return !isOverQuota(err) && !errors.Is(err, errMaybePublished)
}

// publishedBefore reports whether an earlier attempt published the
// session's file (done, with the file), or whether the session's key made
// another file (done, with an Invalid error): the answers publish gets
// from a taken slug, asked before the quota is checked.
func (s *Service) publishedBefore(ctx context.Context, sess store.Session, file store.File) (store.File, bool, error) {
	old, _, err := s.published(ctx, sess)
	if err != nil {
		return store.File{}, true, err
	}
	mine, err := sameUpload(old, file)
	if mine {
		return old, true, nil
	}
	return store.File{}, err != nil, err
}

// sameUpload tells what a record found under the slug of file is to it:
// file itself, stored by an earlier attempt (mine: the objects are the
// same, and object keys are never reused), another file the same upload
// key made (an Invalid error), or another upload's.
func sameUpload(old, file store.File) (mine bool, err error) {
	switch {
	case old.Slug == "":
		return false, nil
	case old.ObjectKey == file.ObjectKey:
		return true, nil
	case file.UploadKey != "" && old.UploadKey == file.UploadKey:
		return false, Errorf(Invalid, "this upload_key already made the file %s; ask file/upload for a new one", old.Slug)
	}
	return false, nil
}

// published returns the file a session made, if its record exists.
func (s *Service) published(ctx context.Context, sess store.Session) (store.File, bool, error) {
	if sess.Slug == "" {
		return store.File{}, false, nil
	}
	f, err := s.cfg.Store.File(ctx, sess.Slug)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return f, false, nil
	case err != nil:
		return f, false, unavailable("cannot read the finished file", err)
	}
	mine := sess.UploadKey != "" && f.UploadKey == sess.UploadKey ||
		sess.ObjectKey != "" && f.ObjectKey == sess.ObjectKey
	return f, mine, nil
}

// repeat answers a request on an upload that holds every byte: once the
// file is published, an empty request or an exact repeat of the last
// chunk gets the finished result again; before, the request finishes
// publishing if it holds the lease.
func (s *Service) repeat(ctx context.Context, sess store.Session, held bool, req ChunkRequest) (Result, error) {
	file, ok, err := s.published(ctx, sess)
	if err != nil {
		s.release(ctx, sess, held)
		return Result{}, err
	}
	if !ok {
		switch {
		case sess.Done:
			s.release(ctx, sess, held)
			return Result{}, Errorf(Invalid, "this upload_key made the file %s, which has since been removed; ask file/upload for a new one", sess.Slug)
		case !held:
			return Result{}, busy(nil)
		}
		// Every byte is held but publishing did not finish; finish it now.
		return s.finish(ctx, req.Account, sess)
	}
	// The lease, if this request took it, guards nothing any more: a
	// published session is never written again, so it is left to run out.
	done := Result{Name: file.Name, Total: file.Size, Done: true, File: file}
	h, err := restoreHash(sess.PrevHash)
	if err != nil {
		return Result{}, fmt.Errorf("chunks: session %s: %w", sess.UploadKey, err)
	}
	n, err := io.Copy(h, io.LimitReader(req.Body, s.cfg.MaxChunkSize+2))
	if err != nil {
		return Result{}, &Error{Kind: Invalid, Msg: "the body could not be read whole: " + err.Error(), Err: err}
	}
	if n == 0 {
		return done, nil
	}
	if req.Range != nil && req.Range.Start == sess.LastStart && sess.PrevHeld+n == sess.Held &&
		hex.EncodeToString(h.Sum(nil)) == file.SHA256 {
		return done, nil
	}
	return Result{}, Errorf(Invalid, "this upload is already complete as %s; ask file/upload for a new upload_key", file.Slug)
}

// undo discards what a write stored that no record will point to: the
// objects it put, or, when begun says this request began them, its
// uploads.
func (s *Service) undo(ctx context.Context, sess *store.Session, w *write, begun bool) {
	ctx = context.WithoutCancel(ctx)
	if w != nil && w.put {
		for _, id := range sess.Mirrors {
			if e, ok := s.cfg.Mirrors.Get(id); ok {
				if err := e.Mirror.Delete(ctx, sess.ObjectKey); err != nil {
					s.cfg.Log.WarnContext(ctx, "delete unpublished object", "mirror", id, "key", sess.ObjectKey, "err", err)
				}
			}
		}
		return
	}
	if begun {
		s.abortAll(ctx, sess.Uploads)
	}
}

// abortFailed discards, in the background, what the mirrors dropped from
// an upload still hold of it: they failed, so the client does not wait.
func (s *Service) abortFailed(ctx context.Context, sess store.Session) {
	ups := map[string]mirrors.Upload{}
	for id := range sess.Failed {
		if up, ok := sess.Uploads[id]; ok {
			ups[id] = up
		}
	}
	s.abortLater(ctx, ups)
}
