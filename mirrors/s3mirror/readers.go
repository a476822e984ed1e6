package s3mirror

import (
	"context"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/acestash/acestash/mirrors"
)

// inMemory is a reader of bytes held in memory (a *bytes.Reader, a piece
// of chunks), which can say how many are left and write them at once.
type inMemory interface {
	io.Reader
	io.WriterTo
	Len() int
}

// exactly returns a reader of the next size bytes of r that fails with
// io.ErrUnexpectedEOF if r ends sooner and never reads past them. If r can
// seek, so can the result, within those bytes, which lets minio-go retry a
// request.
func exactly(r io.Reader, size int64) io.Reader {
	if m, ok := r.(inMemory); ok && int64(m.Len()) == size {
		// Already exact, and the HTTP client writes it to the connection
		// in one call rather than through a 32 KiB copy buffer.
		return m
	}
	e := &exactReader{r: r, size: size, left: size}
	if s, ok := r.(io.Seeker); ok {
		if start, err := s.Seek(0, io.SeekCurrent); err == nil {
			return &exactSeeker{exactReader: e, s: s, start: start}
		}
	}
	return e
}

type exactReader struct {
	r          io.Reader
	size, left int64
	short      error // set once r ended too soon
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = fmt.Errorf("chunk ended after %d of %d bytes: %w", e.size-e.left, e.size, io.ErrUnexpectedEOF)
		e.short = err
	}
	return n, err
}

type exactSeeker struct {
	*exactReader
	s     io.Seeker
	start int64
}

// Seek fails once the underlying reader has come up short, so that
// minio-go does not retry a request that cannot succeed.
func (e *exactSeeker) Seek(off int64, whence int) (int64, error) {
	if e.short != nil {
		return 0, e.short
	}
	pos := e.size - e.left
	switch whence {
	case io.SeekStart:
		pos = off
	case io.SeekCurrent:
		pos += off
	case io.SeekEnd:
		pos = e.size + off
	default:
		return 0, fmt.Errorf("seek: invalid whence %d", whence)
	}
	if pos < 0 || pos > e.size {
		return 0, fmt.Errorf("seek: position %d outside the chunk's %d bytes", pos, e.size)
	}
	if _, err := e.s.Seek(e.start+pos, io.SeekStart); err != nil {
		return 0, err
	}
	e.left = e.size - pos
	return pos, nil
}

// stagedReader reads an upload's staged chunks in order, opening each
// staging object only when the one before is used up, so at most one is
// open at a time.
type stagedReader struct {
	ctx   context.Context
	m     *Mirror
	up    mirrors.Upload
	next  int     // chunk number of sizes[0]
	sizes []int64 // sizes of the chunks not yet opened
	cur   io.ReadCloser
	body  io.Reader // cur, held to its recorded size
}

func (m *Mirror) stagedReader(ctx context.Context, up mirrors.Upload, first int, sizes []int64) *stagedReader {
	return &stagedReader{ctx: ctx, m: m, up: up, next: first, sizes: sizes}
}

func (s *stagedReader) Read(p []byte) (int, error) {
	for {
		if s.cur == nil {
			if len(s.sizes) == 0 {
				return 0, io.EOF
			}
			n, size := s.next, s.sizes[0]
			s.next, s.sizes = s.next+1, s.sizes[1:]
			if size == 0 {
				continue
			}
			if err := s.open(n, size); err != nil {
				return 0, err
			}
		}
		k, err := s.body.Read(p)
		if err == io.EOF {
			s.cur.Close()
			s.cur = nil
			if k == 0 {
				continue
			}
			err = nil
		}
		return k, err
	}
}

// open opens staged chunk n and checks it holds size bytes.
func (s *stagedReader) open(n int, size int64) error {
	mark, _ := ids(s.up)
	rc, info, _, err := s.m.core.GetObject(s.ctx, s.m.bucket, stagingKey(mark, n), minio.GetObjectOptions{})
	if err != nil {
		return wrap(err, "upload %s of %q: reading staged chunk %d", s.up.ID, s.up.Key, n)
	}
	if info.Size != size {
		rc.Close()
		return fmt.Errorf("s3mirror: upload %s of %q: staged chunk %d holds %d bytes, want %d", s.up.ID, s.up.Key, n, info.Size, size)
	}
	s.cur, s.body = rc, exactly(rc, size)
	return nil
}

// Close closes the staging object being read, if any. It may be called
// more than once.
func (s *stagedReader) Close() error {
	if s.cur == nil {
		return nil
	}
	err := s.cur.Close()
	s.cur = nil
	return err
}
