package chunks

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// firstRead is how much of a request is read before pieces are reserved:
// a file that fits needs no piece buffers and goes out with one Put.
const firstRead = 128 << 10

// errOver is a body of more than its limit.
var errOver = errors.New("over the limit")

// A write streams the bytes of one request to the live mirrors of a
// session, in pieces of PieceSize bytes, and hashes them on the way. While
// earlier pieces are written (a fanout), the next is read, so receiving and
// sending overlap and memory stays at perRequest pieces, whatever the size
// of the chunk or the file.
type write struct {
	s     *Service
	sess  *store.Session          // its Uploads and Failed change as mirrors begin and fail
	parts map[string]mirrors.Part // each live mirror's Part after the last piece
	h     hash.Hash
	// whole says the request may be the whole file: if its bytes end
	// within the first piece, and total is -1 or their number, they are
	// stored with one Put per mirror instead of a multipart upload.
	whole bool
	total int64

	n    int64  // bytes read
	head []byte // the first bytes read, for sniffing
	put  bool   // the bytes were stored with Put
}

// newWrite returns a write that continues the session's uploads after
// prev, feeding h.
func (s *Service) newWrite(sess *store.Session, prev map[string]mirrors.Part, h hash.Hash) *write {
	parts := maps.Clone(prev)
	if parts == nil {
		parts = map[string]mirrors.Part{}
	}
	return &write{s: s, sess: sess, parts: parts, h: h, total: -1}
}

// copy writes everything body yields, at most limit bytes; one more is
// errOver, and nothing past the limit reaches a mirror.
func (w *write) copy(ctx context.Context, body io.Reader, limit int64) error {
	fb, _ := w.s.firsts.Get().(*[]byte)
	if fb == nil {
		b := make([]byte, firstRead)
		fb = &b
	}
	defer w.s.firsts.Put(fb)
	first := (*fb)[:min(firstRead, limit+1)]
	k, err := w.read(body, first, limit)
	if err != nil {
		return err
	}
	if k < len(first) { // the body has ended
		return w.last(ctx, first[:k])
	}
	bufs, err := w.s.pieces.reserve(ctx)
	if err != nil {
		return err
	}
	defer w.s.pieces.release(bufs)
	buf := bufs[0]
	copy(buf, first)
	free := make(chan []byte, len(bufs)) // pieces every mirror is done with
	for _, b := range bufs[1:] {
		free <- b
	}

	var f *fanout
	stop := func(err error) error {
		if f == nil {
			return err
		}
		if ferr := f.close(); ferr != nil {
			return ferr // a mirror failure explains more than the reader's
		}
		return err
	}
	send := func(p []byte) error {
		if f == nil {
			var err error
			if f, err = w.newFanout(ctx); err != nil {
				return err
			}
		}
		return f.send(p, buf, free)
	}
	fill := k
	for {
		room := int(min(int64(len(buf)), limit+1-w.n+int64(fill)))
		k, err := w.read(body, buf[fill:room], limit)
		if err != nil {
			return stop(err)
		}
		fill += k
		if fill < room { // the body has ended
			if f == nil && w.whole {
				return w.last(ctx, buf[:fill])
			}
			if fill > 0 {
				if err := send(buf[:fill]); err != nil {
					return stop(err)
				}
			}
			return stop(nil)
		}
		if err := send(buf[:fill]); err != nil {
			return stop(err)
		}
		fill = 0
		select {
		case buf = <-free:
		case <-f.ctx.Done():
			return stop(f.ctx.Err())
		}
	}
}

// hashStretch is how many bytes read hashes at a time.
const hashStretch = 128 << 10

// read fills p from body as far as it goes, feeding the hash; it returns
// fewer than len(p) bytes only at the end of the body.
func (w *write) read(body io.Reader, p []byte, limit int64) (int, error) {
	// Hash each stretch while it is still in the CPU's cache: a whole
	// piece read first and hashed after runs at half the speed.
	k := 0
	var err error
	for k < len(p) && err == nil {
		var n int
		n, err = io.ReadFull(body, p[k:min(k+hashStretch, len(p))])
		w.h.Write(p[k : k+n])
		k += n
	}
	if len(w.head) < 512 {
		w.head = append(w.head, p[:min(k, 512-len(w.head))]...)
	}
	w.n += int64(k)
	switch {
	case w.n > limit:
		return k, errOver
	case err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return k, nil
	}
	return k, &Error{Kind: Invalid, Msg: "the body could not be read whole: " + err.Error(), Err: err}
}

// last writes a request whose bytes all fit in its first piece.
func (w *write) last(ctx context.Context, p []byte) error {
	if w.whole && (w.total < 0 || int64(len(p)) == w.total) {
		return w.putAll(ctx, p)
	}
	if len(p) == 0 {
		return nil
	}
	return w.piece(ctx, p)
}

// piece writes p, a request's only piece, after each live mirror's Part.
func (w *write) piece(ctx context.Context, p []byte) error {
	f, err := w.newFanout(ctx)
	if err != nil {
		return err
	}
	err = f.send(p, p, make(chan []byte, 1))
	if cerr := f.close(); cerr != nil {
		return cerr // a mirror failure explains more than the send's
	}
	return err
}

// putAll stores b as the whole object on every live mirror.
func (w *write) putAll(ctx context.Context, b []byte) error {
	failures := w.s.each(ctx, w.sess, func(ctx context.Context, id string, m mirrors.Mirror, p *pulse) error {
		if err := w.s.healthy(id); err != nil {
			return err
		}
		r := newPieceReader(b, p)
		err := m.Put(ctx, w.sess.ObjectKey, r, int64(len(b)))
		r.revoke()
		if err != nil {
			return fmt.Errorf("put object: %w", err)
		}
		return nil
	})
	w.put = true
	return w.s.drop(ctx, w.sess, failures)
}

// sniff names the content type of the bytes read.
func (w *write) sniff() string {
	if w.s.cfg.Sniff == nil || len(w.head) == 0 {
		return ""
	}
	return w.s.cfg.Sniff(w.head)
}
