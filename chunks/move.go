package chunks

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// Moving copies between mirrors, one file at a time, for the jobs that
// drain a mirror (every copy leaves it) and rebuild one (every copy it
// should hold is checked and written again where missing or wrong). The
// order of a move keeps the file's copies at least as many as before at
// every instant: copy to the target, record the copy, and only then delete
// the copy on the mirror being drained.

// Moved says what Move or Rebuild did to one file.
type Moved int

const (
	Skipped Moved = iota // nothing to do: the file no longer names the mirror, or was removed
	Copied               // a copy was written and recorded
	Checked              // rebuild: the copy was there and right
)

// Move moves f's copy on mirror from to one of targets (empty: every
// mirror the owner may use), choosing one that is configured, healthy,
// not draining and not yet holding the file. The copy on from is deleted
// once the record names the new one; a file that only lists from as
// Missing loses that entry. pace, if not nil, wraps the bytes read.
func (s *Service) Move(ctx context.Context, f store.File, from string, targets []string, pace func(io.Reader) io.Reader) (Moved, error) {
	if f.Status != store.StatusActive {
		return Skipped, nil
	}
	if !slices.Contains(f.Mirrors, from) {
		if !slices.Contains(f.Missing, from) {
			return Skipped, nil
		}
		return Copied, s.forget(ctx, f, from, "")
	}
	to, err := s.target(ctx, f, from, targets)
	if err != nil {
		return Skipped, err
	}
	src := f
	if s.healthy(from) == nil {
		src.Mirrors = []string{from} // read the copy that leaves, not the others
	}
	e, _ := s.cfg.Mirrors.Get(to)
	if err := s.copyPaced(ctx, src, e.Mirror, pace); err != nil {
		if src.Mirrors[0] != from || len(f.Mirrors) == 1 {
			return Skipped, fmt.Errorf("copy %s to mirror %s: %w", f.Slug, to, err)
		}
		// The leaving copy could not be read: take another.
		if err := s.copyPaced(ctx, f, e.Mirror, pace); err != nil {
			return Skipped, fmt.Errorf("copy %s to mirror %s: %w", f.Slug, to, err)
		}
	}
	if err := s.forget(ctx, f, from, to); err != nil {
		return Skipped, err
	}
	return Copied, nil
}

// forget replaces from by to (none if "") in the record as it is now,
// then deletes the copy on from. A file removed meanwhile loses the copy
// on to again.
func (s *Service) forget(ctx context.Context, f store.File, from, to string) error {
	undo := func() {
		if to != "" {
			s.deleteCopy(ctx, to, f.ObjectKey)
		}
	}
	cur, gone, err := s.removed(ctx, f)
	if err != nil {
		return err
	}
	if gone {
		undo()
		return nil
	}
	without := func(ids []string, id string) []string {
		return slices.DeleteFunc(slices.Clone(ids), func(m string) bool { return m == id })
	}
	cur.Mirrors = without(cur.Mirrors, from)
	cur.Missing = without(cur.Missing, from)
	if to != "" {
		cur.Missing = without(cur.Missing, to)
		if !slices.Contains(cur.Mirrors, to) {
			cur.Mirrors = append(cur.Mirrors, to)
		}
	}
	if len(cur.Missing) == 0 {
		cur.Missing = nil
	}
	err = s.cfg.Store.UpdateFile(ctx, cur)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		undo() // taken down or deleted between the read and the write
		return nil
	}
	if err != nil {
		undo()
		return fmt.Errorf("record the move of %s: %w", f.Slug, err)
	}
	// Taken down by a writer that read the record before the move: its
	// delete missed the new copy.
	if _, gone, err := s.removed(ctx, f); err == nil && gone {
		undo()
	}
	s.deleteCopy(ctx, from, f.ObjectKey)
	return nil
}

// ErrNoTarget is returned (wrapped) by Move when no mirror can take the
// copy.
var ErrNoTarget = errors.New("no mirror can take the copy")

// target picks the mirror f's copy on from goes to, spreading files over
// the candidates by slug.
func (s *Service) target(ctx context.Context, f store.File, from string, targets []string) (string, error) {
	var allowed func(string) bool
	if len(targets) > 0 {
		allowed = func(id string) bool { return slices.Contains(targets, id) }
	} else {
		a, err := s.cfg.Store.Account(ctx, f.Owner)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("owner of %s: %w", f.Slug, err)
		}
		allowed = func(id string) bool { return err != nil || Allowed(a, id) }
	}
	var ids []string
	for _, e := range s.cfg.Mirrors.All() {
		if e.ID != from && allowed(e.ID) && !slices.Contains(f.Mirrors, e.ID) &&
			!s.draining(e.ID) && s.healthy(e.ID) == nil {
			ids = append(ids, e.ID)
		}
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("file %s on mirrors %v: %w", f.Slug, f.Mirrors, ErrNoTarget)
	}
	h := fnv.New32a()
	io.WriteString(h, f.Slug)
	return ids[h.Sum32()%uint32(len(ids))], nil
}

// Rebuild checks f's copy on mirror id, if the file should have one
// there (the record lists id among its mirrors or missing ones), by
// reading it whole; a copy that is missing or wrong is written again
// from the others and recorded. pace, if not nil, wraps the bytes read
// and written.
func (s *Service) Rebuild(ctx context.Context, f store.File, id string, pace func(io.Reader) io.Reader) (Moved, error) {
	if f.Status != store.StatusActive || !slices.Contains(f.Mirrors, id) && !slices.Contains(f.Missing, id) {
		return Skipped, nil
	}
	e, ok := s.cfg.Mirrors.Get(id)
	if !ok {
		return Skipped, fmt.Errorf("mirror %s is not configured", id)
	}
	if slices.Contains(f.Mirrors, id) {
		d := &duty{share: 1, start: time.Now()}
		err := s.check(ctx, f, readerMirror{e.Mirror, pace}, d)
		if err == nil {
			return Checked, nil
		}
		if !errors.Is(err, errBadCopy) && !errors.Is(err, mirrors.ErrNotFound) {
			return Skipped, fmt.Errorf("read the copy of %s: %w", f.Slug, err)
		}
	}
	src := f
	src.Mirrors = slices.DeleteFunc(slices.Clone(f.Mirrors), func(m string) bool { return m == id })
	if len(src.Mirrors) == 0 {
		return Skipped, fmt.Errorf("file %s: no other copy to rebuild mirror %s from", f.Slug, id)
	}
	if err := s.copyPaced(ctx, src, e.Mirror, pace); err != nil {
		if errors.Is(err, mirrors.ErrNotFound) && s.noCopy(ctx, src) {
			// Nothing to rebuild from: after a restore, a file deleted while
			// the backup was taken is such a record. It is left as it is.
			s.cfg.Log.WarnContext(ctx, "rebuild: no mirror holds a copy of the file", "slug", f.Slug, "mirror", id)
			return Skipped, nil
		}
		return Skipped, fmt.Errorf("copy %s to mirror %s: %w", f.Slug, id, err)
	}
	if slices.Contains(f.Mirrors, id) {
		if _, gone, err := s.removed(ctx, f); err == nil && gone {
			s.deleteCopy(ctx, id, f.ObjectKey)
		}
		return Copied, nil
	}
	return Copied, s.recordCopy(ctx, f, id)
}

// noCopy reports whether every mirror f names answers that it does not
// hold f's object.
func (s *Service) noCopy(ctx context.Context, f store.File) bool {
	for _, id := range f.Mirrors {
		e, ok := s.cfg.Mirrors.Get(id)
		if !ok {
			return false
		}
		rc, err := e.Mirror.Open(ctx, f.ObjectKey, 0, -1)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, mirrors.ErrNotFound) {
			return false
		}
	}
	return true
}

// readerMirror is a mirror whose reads go through pace.
type readerMirror struct {
	mirrors.Mirror
	pace func(io.Reader) io.Reader
}

func (m readerMirror) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := m.Mirror.Open(ctx, key, off, n)
	if err != nil || m.pace == nil {
		return rc, err
	}
	return struct {
		io.Reader
		io.Closer
	}{m.pace(rc), rc}, nil
}

// Empty deletes every object and aborts every upload under the prefix
// acestash writes on the mirror, once a drain has moved every copy
// away, and returns how many it removed. A mirror that cannot list what
// it holds is left as it is.
func (s *Service) Empty(ctx context.Context, id string) (int, error) {
	e, ok := s.cfg.Mirrors.Get(id)
	if !ok {
		return 0, fmt.Errorf("mirror %s is not configured", id)
	}
	l, ok := e.Mirror.(mirrors.Lister)
	if !ok {
		return 0, nil
	}
	var keys []string
	if err := l.ListObjects(ctx, objectPrefix, func(key string, _ mirrors.Info) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("empty mirror %s: %w", id, err)
	}
	var ups []mirrors.Upload
	if err := l.ListUploads(ctx, objectPrefix, func(up mirrors.Upload, _ time.Time) error {
		ups = append(ups, up)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("empty mirror %s: %w", id, err)
	}
	n := 0
	var errs []error
	for _, k := range keys {
		if err := e.Mirror.Delete(ctx, k); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	for _, up := range ups {
		if err := abort(ctx, e.Mirror, up, s.cfg.MirrorTimeout); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("empty mirror %s: %w", id, err)
	}
	return n, nil
}

// Pace returns a pace function for Move and Rebuild that lets through at
// most bytesPerSec bytes a second (0: no limit) and keeps the copies
// working at most share of the time (0 or 1: all of it), their times
// added up when several run at once, as the scrubber does; nil when
// neither limits anything. The function may be used by many copies at
// once.
func Pace(ctx context.Context, bytesPerSec int64, share float64) func(io.Reader) io.Reader {
	var d *duty
	if share > 0 && share < 1 {
		d = &duty{share: share, start: time.Now()}
	}
	if bytesPerSec <= 0 && d == nil {
		return nil
	}
	var lim *rate.Limiter
	burst := int(min(bytesPerSec, 1<<20))
	if bytesPerSec > 0 {
		lim = rate.NewLimiter(rate.Limit(bytesPerSec), burst)
	}
	return func(r io.Reader) io.Reader {
		if lim != nil {
			r = limited(ctx, r, lim, burst)
		}
		if d != nil {
			r = d.stream(ctx, r)
		}
		return r
	}
}

// limited reads r at most as fast as lim allows.
func limited(ctx context.Context, r io.Reader, lim *rate.Limiter, burst int) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		if len(p) > burst {
			p = p[:burst]
		}
		n, err := r.Read(p)
		if n > 0 {
			if werr := lim.WaitN(ctx, n); werr != nil && err == nil {
				err = werr
			}
		}
		return n, err
	})
}
