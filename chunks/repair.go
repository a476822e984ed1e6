package chunks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"io"
	"slices"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// Self-repair: a file published while one of its selected mirrors was down
// records that mirror as Missing. Repair copies it there from a mirror that
// holds it, checking the SHA-256 on the way, and records the new copy.

// copyPart is the size of the parts a copy too large for one Put is
// written in.
const copyPart = 64 << 20

// Repair gives every damaged file a copy on each Missing mirror that is
// configured and healthy, and returns how many copies it made. A copy that
// fails is left for the next run.
func (s *Service) Repair(ctx context.Context) (int, error) {
	ctx = mirrors.Patient(ctx)
	n := 0
	after := ""
	for {
		list, err := s.cfg.Store.DamagedFiles(ctx, after, 100)
		if err != nil {
			return n, fmt.Errorf("chunks: list damaged files: %w", err)
		}
		if len(list) == 0 {
			return n, nil
		}
		for _, f := range list {
			n += s.repair(ctx, f)
		}
		after = list[len(list)-1].Slug
	}
}

// repair copies f to the mirrors it misses and returns how many copies it
// recorded.
func (s *Service) repair(ctx context.Context, f store.File) int {
	if f.Status != store.StatusActive || !f.Expires.IsZero() && !s.cfg.Clock().Before(f.Expires) {
		return 0 // taken down or expired: its copies are going, not coming
	}
	n := 0
	for _, id := range f.Missing {
		e, ok := s.cfg.Mirrors.Get(id)
		if !ok || s.healthy(id) != nil || s.draining(id) {
			continue // a draining mirror's copies are going
		}
		if err := s.copyTo(ctx, f, e.Mirror); err != nil {
			s.cfg.Log.Warn("repair: copy file", "slug", f.Slug, "mirror", id, "err", err)
			continue
		}
		if err := s.recordCopy(ctx, f, id); err != nil {
			s.cfg.Log.Warn("repair: record copy", "slug", f.Slug, "mirror", id, "err", err)
			continue
		}
		s.cfg.Log.Info("repaired a missing copy", "slug", f.Slug, "mirror", id)
		n++
	}
	return n
}

// recordCopy moves id from the file's Missing to its Mirrors, on the record
// as it is now. A file removed or taken down meanwhile loses the copy
// again, and its record is left as it is.
func (s *Service) recordCopy(ctx context.Context, f store.File, id string) error {
	cur, gone, err := s.removed(ctx, f)
	if gone {
		s.deleteCopy(ctx, id, f.ObjectKey)
		return errors.New("the file was removed while it was copied")
	}
	if err != nil {
		return err
	}
	cur.Missing = slices.DeleteFunc(cur.Missing, func(m string) bool { return m == id })
	if len(cur.Missing) == 0 {
		cur.Missing = nil
	}
	if !slices.Contains(cur.Mirrors, id) {
		cur.Mirrors = append(cur.Mirrors, id)
	}
	err = s.cfg.Store.UpdateFile(ctx, cur)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// Taken down or deleted between the read and the write.
		s.deleteCopy(ctx, id, f.ObjectKey)
		return errors.New("the file was removed while it was copied")
	}
	return err
}

func (s *Service) deleteCopy(ctx context.Context, id, key string) {
	if e, ok := s.cfg.Mirrors.Get(id); ok {
		if err := e.Mirror.Delete(context.WithoutCancel(ctx), key); err != nil {
			s.cfg.Log.Warn("delete copy", "mirror", id, "key", key, "err", err)
		}
	}
}

// copyTo writes the file's bytes, read from the mirrors holding it, to dst
// under its object key, and checks them against the record's SHA-256; a
// copy that does not match is deleted.
func (s *Service) copyTo(ctx context.Context, f store.File, dst mirrors.Mirror) error {
	return s.copyPaced(ctx, f, dst, nil)
}

// copyPaced is copyTo reading through pace, when it is not nil.
func (s *Service) copyPaced(ctx context.Context, f store.File, dst mirrors.Mirror, pace func(io.Reader) io.Reader) error {
	rc, err := s.Open(ctx, f, 0, f.Size)
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if pace != nil {
		r = pace(rc)
	}
	h := sha256.New()
	if err := s.write(ctx, dst, f.ObjectKey, io.TeeReader(r, h), f.Size); err != nil {
		return err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		dst.Delete(context.WithoutCancel(ctx), f.ObjectKey)
		return fmt.Errorf("the bytes read have SHA-256 %s, the record says %s", sum, f.SHA256)
	}
	return nil
}

// write stores size bytes from r as the object key on m: with one Put,
// or in parts when that is too large for one.
func (s *Service) write(ctx context.Context, m mirrors.Mirror, key string, r io.Reader, size int64) error {
	return s.writeParts(ctx, m, key, r, size, copyPart)
}

// writeParts is write with parts of the given size. Each operation on m is
// bounded by MirrorTimeout, not the whole copy, so a file of any size can
// be copied.
func (s *Service) writeParts(ctx context.Context, m mirrors.Mirror, key string, r io.Reader, size, part int64) error {
	op := func(fn func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.MirrorTimeout)
		defer cancel()
		return fn(ctx)
	}
	if size <= part {
		if err := op(func(ctx context.Context) error { return m.Put(ctx, key, r, size) }); err != nil {
			return fmt.Errorf("put: %w", err)
		}
		return nil
	}
	var up mirrors.Upload
	err := op(func(ctx context.Context) (err error) {
		up, err = m.Begin(ctx, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	abort := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.MirrorTimeout)
		defer cancel()
		m.Abort(ctx, up)
	}
	var prev mirrors.Part
	for left := size; left > 0; {
		n := min(left, part)
		err := op(func(ctx context.Context) (err error) {
			prev, err = m.PutPart(ctx, up, prev, io.LimitReader(r, n), n)
			return err
		})
		if err != nil {
			abort()
			return fmt.Errorf("put part: %w", err)
		}
		left -= n
	}
	if err := op(func(ctx context.Context) error { return m.Complete(ctx, up, prev) }); err != nil {
		abort()
		return fmt.Errorf("complete: %w", err)
	}
	return nil
}
