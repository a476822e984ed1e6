package s3mirror

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/acestash/acestash/mirrors"
)

// Large reads over plain HTTP get a connection of their own, outside
// minio-go's pool, so that once the response's headers are read the body
// can go from this socket to the client's with splice(2): the kernel moves
// the bytes and the process never copies them. A download proxied this way
// costs acestash a fraction of the CPU a copy through a buffer does.
const (
	// spliceMin is the smallest read that gets its own connection; below
	// it, a pooled connection costs less than dialling one.
	spliceMin = 8 << 20
	// spliceSegment is how many bytes one splice call may move under one
	// read deadline, so that a mirror that stops sending is noticed.
	spliceSegment = 4 << 20
	// signedFor is how long the URL a spliced read sends is valid: it is
	// sent at once, by this process, and never shown to anyone.
	signedFor = time.Minute
)

// errNotSpliceable is an answer a raw read does not handle (an error, a
// chunked body): the read is asked again through minio-go, which
// understands S3's errors.
var errNotSpliceable = errors.New("s3mirror: answer not for splicing")

// openRaw sends a GET of length bytes of key from off on a connection of
// its own and returns the body once the answer's headers are in. It fails
// with errNotSpliceable for anything but a plain 200 or 206 answer.
func (m *Mirror) openRaw(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	u, err := m.core.PresignedGetObject(ctx, m.bucket, key, signedFor, nil)
	if err != nil {
		return nil, wrap(err, "open %q", key)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("s3mirror: open %q: %w", key, err)
	}
	if p, err := http.ProxyFromEnvironment(req); err != nil || p != nil {
		return nil, errNotSpliceable // through a proxy, like minio-go's requests
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	req.Close = true
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("s3mirror: open %q: %w", key, err)
	}
	conn, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, errNotSpliceable
	}
	r := &rawReader{conn: conn, br: bufio.NewReader(conn)}
	// The request's end (a hedge lost, a stall, the client gone) closes
	// the connection, which ends any read or splice on it.
	r.stop = context.AfterFunc(ctx, func() { conn.Close() })
	if err := req.Write(conn); err != nil {
		r.Close()
		return nil, fmt.Errorf("s3mirror: open %q: %w", key, err)
	}
	resp, err := http.ReadResponse(r.br, req)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("s3mirror: open %q: %w", key, err)
	}
	if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK ||
		resp.ContentLength < 0 || len(resp.TransferEncoding) > 0 {
		r.Close()
		return nil, errNotSpliceable
	}
	r.left = resp.ContentLength
	return r, nil
}

// rawReader is the body of a GET on a connection of its own.
type rawReader struct {
	conn *net.TCPConn
	br   *bufio.Reader // holds the bytes read past the headers
	left int64         // body bytes not handed out yet
	stop func() bool
}

var _ mirrors.Splicer = (*rawReader)(nil)

func (r *rawReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p) // reads straight into p once br is empty
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Splice writes the bytes br holds, then has w's ReadFrom take the rest
// from the socket, spliceSegment bytes at a time, each under a read
// deadline of stall. A segment that timed out after moving bytes spent
// its time writing to the client, not waiting for the mirror, and the
// next one goes on; one that moved none found the mirror silent.
func (r *rawReader) Splice(w io.Writer, stall time.Duration) (int64, bool) {
	rf, ok := w.(io.ReaderFrom)
	if !ok {
		return 0, false
	}
	var total int64
	if k := min(int64(r.br.Buffered()), r.left); k > 0 {
		b, _ := r.br.Peek(int(k))
		n, err := w.Write(b)
		r.br.Discard(n)
		r.left -= int64(n)
		total += int64(n)
		if err != nil {
			return total, false
		}
	}
	defer r.conn.SetReadDeadline(time.Time{})
	for r.left > 0 {
		if err := r.conn.SetReadDeadline(time.Now().Add(stall)); err != nil {
			return total, false
		}
		seg := &io.LimitedReader{R: r.conn, N: min(r.left, spliceSegment)}
		n, err := rf.ReadFrom(seg)
		r.left -= n
		total += n
		switch {
		case err == nil && seg.N == 0:
		case errors.Is(err, os.ErrDeadlineExceeded) && n > 0:
		case errors.Is(err, os.ErrDeadlineExceeded):
			return total, true
		default: // ended early, or failed: Read finds out how
			return total, false
		}
	}
	return total, false
}

func (r *rawReader) Close() error {
	r.stop()
	return r.conn.Close()
}
