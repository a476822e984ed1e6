package chunks

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/bcrypt"

	"github.com/acestash/acestash/store"
)

// Open returns n bytes of the file from offset off, read from the first
// mirror holding it (healthy ones first) that yields the first bytes. A
// mirror that fails before then is passed over, so a caller that has sent
// nothing yet never sees its failure.
func (s *Service) Open(ctx context.Context, f store.File, off, n int64) (io.ReadCloser, error) {
	var errs []error
	for _, id := range s.readOrder(f) {
		e, ok := s.cfg.Mirrors.Get(id)
		if !ok {
			continue
		}
		rc, err := e.Mirror.Open(ctx, f.ObjectKey, off, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("mirror %s: %w", id, err))
			continue
		}
		head := make([]byte, min(n, 32<<10))
		k, err := io.ReadFull(rc, head)
		if err != nil && !(errors.Is(err, io.ErrUnexpectedEOF) && int64(k) == n) {
			rc.Close()
			errs = append(errs, fmt.Errorf("mirror %s: first read: %w", id, err))
			continue
		}
		return &reader{head: head[:k], rest: rc}, nil
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("chunks: file %s: no configured mirror holds it", f.Slug)
	}
	return nil, fmt.Errorf("chunks: file %s: %w", f.Slug, errors.Join(errs...))
}

// reader yields the bytes read ahead from a mirror, then the rest.
type reader struct {
	head []byte
	rest io.ReadCloser
}

func (r *reader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	return r.rest.Read(p)
}

func (r *reader) Close() error { return r.rest.Close() }

// copyBuffer is the buffer WriteTo copies through when neither side can
// copy by itself: large, so a download costs few system calls.
const copyBuffer = 256 << 10

// WriteTo writes the rest of the bytes to w, letting the mirror's reader do
// the copy where it can (a file sent with sendfile, for one).
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if len(r.head) > 0 {
		k, err := w.Write(r.head)
		n += int64(k)
		r.head = r.head[k:]
		if err != nil {
			return n, err
		}
	}
	var k int64
	var err error
	if wt, ok := r.rest.(io.WriterTo); ok {
		k, err = wt.WriteTo(w)
	} else {
		// Hide both sides' own copy methods, which would use small buffers.
		k, err = io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r.rest}, make([]byte, copyBuffer))
	}
	return n + k, err
}

// readOrder lists the mirrors holding the file, healthy ones first.
func (s *Service) readOrder(f store.File) []string {
	if s.cfg.Health == nil {
		return f.Mirrors
	}
	var good, bad []string
	for _, id := range f.Mirrors {
		if s.cfg.Health(id) == nil {
			good = append(good, id)
		} else {
			bad = append(bad, id)
		}
	}
	return append(good, bad...)
}

// CheckPassword reports whether password opens the file; a file without a
// password needs none.
func CheckPassword(f store.File, password string) bool {
	if len(f.PasswordHash) == 0 {
		return true
	}
	return password != "" && bcrypt.CompareHashAndPassword(f.PasswordHash, []byte(password)) == nil
}
