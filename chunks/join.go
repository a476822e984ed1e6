package chunks

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/acestash/acestash/store"
)

// Join fills the stream upload key, created with the summed size of the
// finished partial uploads parts, with their bytes in order, publishes it
// and removes the parts. The bytes are read back from the parts' mirrors
// and written like any other upload's, so the joined file lands on the
// upload's own mirrors whatever the parts were written to.
func (s *Service) Join(ctx context.Context, a store.Account, key, holder string, parts []string) (store.Session, error) {
	sess, err := s.held(ctx, a, key, holder)
	if err != nil {
		return sess, err
	}
	if sess.Done {
		return sess, nil
	}
	if sess.Held != 0 {
		return sess, Errorf(Invalid, "the upload holds bytes already; only an empty upload can be joined into")
	}
	var files []store.File
	var partials []store.Session
	var size int64
	for _, k := range parts {
		p, err := s.Stream(ctx, a, k)
		if err != nil {
			return sess, err
		}
		if !p.Partial || !p.Done {
			return sess, Errorf(Invalid, "upload %s is not a finished partial upload", k)
		}
		partials = append(partials, p)
		files = append(files, store.File{Slug: k, ObjectKey: p.ObjectKey, Mirrors: live(&p), Size: p.Total})
		size += p.Total
	}
	if size != sess.Total {
		return sess, Errorf(Invalid, "the partial uploads hold %d bytes, the upload %d", size, sess.Total)
	}
	next := sess
	r := &joined{ctx: ctx, s: s, files: files}
	defer r.close()
	w, err := s.whole(ctx, a, &next, r, size, size)
	if err != nil {
		return sess, err
	}
	if next.Held != size {
		s.undo(ctx, &next, w, true)
		return sess, Errorf(Invalid, "the partial uploads yielded %d bytes, not %d", next.Held, size)
	}
	next.Joined = parts
	next.Uploads = nil // completed by whole
	f, err := s.record(next)
	if err == nil {
		_, err = s.publish(context.WithoutCancel(ctx), a, &next, f, true)
	}
	if err != nil {
		if mayUndo(err) {
			s.undo(ctx, &next, w, true)
		}
		return sess, err
	}
	next.Done = true
	next.Updated = s.cfg.Clock().UTC()
	saved, err := s.saveHeld(context.WithoutCancel(ctx), sess, next, holder, "cannot record the upload")
	if err != nil {
		s.cfg.Log.WarnContext(ctx, "mark joined upload done", "upload_key", key, "err", err)
		saved = next
	}
	// A finished partial upload no longer changes: its objects are where
	// the first read of it said.
	for _, p := range partials {
		s.dropObjects(context.WithoutCancel(ctx), p)
		if err := s.cfg.Store.DeleteSession(context.WithoutCancel(ctx), p.UploadKey); err != nil {
			s.cfg.Log.WarnContext(ctx, "delete joined partial upload", "upload_key", p.UploadKey, "err", err)
		}
	}
	return saved, nil
}

// joined reads files one after another, each from the first mirror that
// yields it.
type joined struct {
	ctx   context.Context
	s     *Service
	files []store.File
	cur   io.ReadCloser
}

func (j *joined) Read(p []byte) (int, error) {
	for {
		if j.cur == nil {
			if len(j.files) == 0 {
				return 0, io.EOF
			}
			f := j.files[0]
			j.files = j.files[1:]
			if f.Size == 0 {
				continue
			}
			rc, err := j.s.Open(j.ctx, f, 0, f.Size)
			if err != nil {
				return 0, unavailable("cannot read a partial upload", fmt.Errorf("upload %s: %w", f.Slug, err))
			}
			j.cur = rc
		}
		n, err := j.cur.Read(p)
		if errors.Is(err, io.EOF) {
			j.cur.Close()
			j.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (j *joined) close() {
	if j.cur != nil {
		j.cur.Close()
	}
}
