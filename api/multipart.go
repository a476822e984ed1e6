package api

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"path/filepath"
	"strings"
)

// multipartReader reads a multipart/form-data body part by part, as
// mime/multipart.Reader does, and accepts the same bodies. It is faster
// where it matters: a part read into a large buffer is read from the body
// straight into that buffer and searched there for the boundary, so a file
// part costs one copy and one system call per read rather than a copy more
// and a system call per 4 KiB. Boundary lines and headers go through a
// bufio.Reader, whose bytes a part gives out first.
type multipartReader struct {
	src *pushback     // the body, after any bytes a part read too far
	br  *bufio.Reader // over src

	// The boundary as it appears: "\r\n--b--" and its slices. A body whose
	// first boundary line ends in a bare "\n" uses "\n" instead of "\r\n".
	nl, nlDashBoundary, dashBoundary, dashBoundaryDash []byte

	parts int
	cur   *multipartPart
}

// Limits on what the reader holds in memory.
const (
	maxBoundary       = 200      // RFC 2046 allows 70
	maxPartHeaderSize = 16 << 10 // the headers of one part
	directRead        = 4 << 10  // reads into smaller buffers go through br
	multipartBuffer   = 64 << 10
)

func newMultipartReader(body io.Reader, boundary string) (*multipartReader, error) {
	if boundary == "" {
		return nil, errors.New("multipart request without a boundary")
	}
	if len(boundary) > maxBoundary {
		return nil, fmt.Errorf("multipart boundary of %d bytes; at most %d are accepted", len(boundary), maxBoundary)
	}
	b := []byte("\r\n--" + boundary + "--")
	src := &pushback{r: body}
	return &multipartReader{
		src: src, br: bufio.NewReaderSize(src, multipartBuffer),
		nl: b[:2], nlDashBoundary: b[:len(b)-2], dashBoundary: b[2 : len(b)-2], dashBoundaryDash: b[2:],
	}, nil
}

// multipartPart is one part: its headers, then its content through Read.
type multipartPart struct {
	Header textproto.MIMEHeader

	mr        *multipartReader
	r         io.Reader // the content: the part itself, or a decoder over it
	total     int64     // bytes of content read
	name      string
	filename  string
	readErr   error // from src, once it failed
	formData  bool
	delimited bool // the content has been read up to the boundary
}

// NextPart skips the rest of the current part and returns the next one;
// io.EOF after the last.
func (r *multipartReader) NextPart() (*multipartPart, error) {
	if r.cur != nil {
		if _, err := io.Copy(io.Discard, r.cur); err != nil {
			return nil, fmt.Errorf("multipart: %w", err)
		}
		r.cur = nil
	}
	expectPart := false
	for {
		line, err := r.br.ReadSlice('\n')
		if err == io.EOF && r.isFinal(line) {
			return nil, io.EOF
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("multipart: a line between parts is too long")
		}
		if err != nil {
			return nil, fmt.Errorf("multipart: NextPart: %w", err)
		}
		switch {
		case r.isDelimiter(line):
			r.parts++
			p := &multipartPart{mr: r}
			if err := p.readHeader(); err != nil {
				return nil, err
			}
			r.cur = p
			return p, nil
		case r.isFinal(line):
			return nil, io.EOF
		case expectPart:
			return nil, fmt.Errorf("multipart: expecting a new part; got line %q", line)
		case r.parts == 0:
			continue // preamble
		case bytes.Equal(line, r.nl):
			expectPart = true
		default:
			return nil, fmt.Errorf("multipart: unexpected line between parts: %q", line)
		}
	}
}

func (r *multipartReader) isFinal(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, r.dashBoundaryDash)
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " \t")
	return len(rest) == 0 || bytes.Equal(rest, r.nl)
}

func (r *multipartReader) isDelimiter(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, r.dashBoundary)
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " \t")
	if r.parts == 0 && len(rest) == 1 && rest[0] == '\n' {
		r.nl, r.nlDashBoundary = r.nl[1:], r.nlDashBoundary[1:]
	}
	return bytes.Equal(rest, r.nl)
}

// readHeader reads the part's header lines, up to maxPartHeaderSize bytes.
// A line that begins with a space or tab continues the one before.
func (p *multipartPart) readHeader() error {
	p.Header = textproto.MIMEHeader{}
	var logical []byte // the header line being read, continuations joined
	size := 0
	for {
		line, err := p.mr.br.ReadSlice('\n')
		size += len(line)
		if errors.Is(err, bufio.ErrBufferFull) || size > maxPartHeaderSize {
			return fmt.Errorf("multipart: part headers longer than %d bytes", maxPartHeaderSize)
		}
		if err != nil {
			return fmt.Errorf("multipart: reading part headers: %w", err)
		}
		cont := line[0] == ' ' || line[0] == '\t'
		// As net/textproto: the line break goes, then spaces and tabs
		// only; other bytes, such as UTF-8's spaces, are the value's.
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		line = bytes.Trim(line, " \t")
		switch {
		case cont && logical == nil:
			return fmt.Errorf("multipart: part headers begin with a continuation line %q", line)
		case cont:
			logical = append(append(logical, ' '), line...)
			continue
		case logical != nil:
			if err := p.add(logical); err != nil {
				return err
			}
		}
		if len(line) == 0 {
			break
		}
		logical = append([]byte(nil), line...)
	}
	if disp, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition")); err == nil {
		p.formData, p.name, p.filename = disp == "form-data", params["name"], params["filename"]
	}
	p.r = (*partContent)(p)
	if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		p.Header.Del("Content-Transfer-Encoding")
		p.r = quotedprintable.NewReader(p.r)
	}
	return nil
}

// add adds a "Key: value" line to the part's headers.
func (p *multipartPart) add(line []byte) error {
	k, v, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(k) == 0 || strings.IndexFunc(string(k), notKeyRune) >= 0 {
		return fmt.Errorf("multipart: malformed part header line %q", line)
	}
	key := textproto.CanonicalMIMEHeaderKey(string(k)) // left as it is if it has a space
	p.Header[key] = append(p.Header[key], string(bytes.TrimLeft(v, " \t")))
	return nil
}

// notKeyRune reports the runes a header key may not have: those outside
// RFC 9110's token, but for the space net/textproto also lets through.
func notKeyRune(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune(" !#$%&'*+-.^_`|~", r)
}

// FormName is the part's field name, "" unless it is form-data.
func (p *multipartPart) FormName() string {
	if !p.formData {
		return ""
	}
	return p.name
}

// FileName is the last element of the part's filename, "" if it has none.
func (p *multipartPart) FileName() string {
	if p.filename == "" {
		return ""
	}
	return filepath.Base(p.filename)
}

func (p *multipartPart) Read(b []byte) (int, error) { return p.r.Read(b) }

// partContent reads a part's content up to the boundary.
type partContent multipartPart

func (p *partContent) Read(b []byte) (int, error) {
	if p.delimited {
		return 0, io.EOF
	}
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var err error
	if p.mr.br.Buffered() > 0 || len(b) < directRead {
		n, err = p.readBuffered(b)
	} else {
		n, err = p.readDirect(b)
	}
	p.total += int64(n)
	if n == 0 && err == nil && p.delimited {
		err = io.EOF
	}
	return n, err
}

// readDirect reads from the body into b and gives back, for the next read
// or for NextPart, what may be or is the boundary.
func (p *partContent) readDirect(b []byte) (int, error) {
	mr := p.mr
	n, empty := 0, 0
	for {
		m, err := mr.src.Read(b[n:])
		n += m
		if m == 0 && err == nil {
			if empty++; empty == 100 { // as bufio gives up
				err = io.ErrNoProgress
			}
		}
		if err != nil && p.readErr == nil {
			p.readErr = err
		}
		data, found := mr.scan(b[:n], p.total == 0, p.readErr != nil)
		switch {
		case found:
			p.delimited = true
			mr.src.unread(b[data:n])
			return data, nil
		case p.readErr != nil:
			return data, p.failure()
		case data > 0:
			mr.src.unread(b[data:n])
			return data, nil
		case n == len(b): // cannot happen: b is longer than a boundary
			return 0, errors.New("multipart: read buffer too small for the boundary")
		}
	}
}

// readBuffered reads from what br holds, as mime/multipart reads parts.
func (p *partContent) readBuffered(b []byte) (int, error) {
	mr := p.mr
	for {
		buf, _ := mr.br.Peek(mr.br.Buffered())
		all := len(buf)
		// Scan only what b can take, and enough after it to see a boundary.
		buf = buf[:min(all, len(b)+len(mr.nlDashBoundary)+2)]
		data, found := mr.scan(buf, p.total == 0, p.readErr != nil && len(buf) == all)
		if data > 0 || found {
			k := copy(b, buf[:data])
			mr.br.Discard(k)
			p.delimited = found && k == data
			return k, nil
		}
		if p.readErr != nil {
			return 0, p.failure()
		}
		if _, err := mr.br.Peek(len(buf) + 1); err != nil {
			p.readErr = err // ErrBufferFull cannot happen: buf is a boundary at most
		}
	}
}

// failure is the error of a body that failed or ended inside a part.
func (p *partContent) failure() error {
	if errors.Is(p.readErr, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return p.readErr
}

// scan says how many bytes at the start of buf are part content for sure,
// and whether the boundary follows them. atStart: buf begins the content,
// where the boundary may come without its line break. atEOF: no byte
// follows buf.
func (r *multipartReader) scan(buf []byte, atStart, atEOF bool) (data int, found bool) {
	if atStart && bytes.HasPrefix(buf, r.dashBoundary) {
		switch matchAfter(buf, r.dashBoundary, atEOF) {
		case 0:
			return 0, false
		case +1:
			return 0, true
		}
	} else if atStart && bytes.HasPrefix(r.dashBoundary, buf) && !atEOF {
		return 0, false
	}
	from := 0
	for {
		i := bytes.Index(buf[from:], r.nlDashBoundary)
		if i < 0 {
			break
		}
		i += from
		switch matchAfter(buf[i:], r.nlDashBoundary, atEOF) {
		case 0:
			return i, false
		case +1:
			return i, true
		}
		from = i + 1
	}
	// The bytes from the last line break on may begin the boundary.
	if i := bytes.LastIndexByte(buf, r.nlDashBoundary[0]); i >= 0 && !atEOF && bytes.HasPrefix(r.nlDashBoundary, buf[i:]) {
		return i, false
	}
	return len(buf), false
}

// matchAfter says whether the boundary prefix that buf begins with is a
// delimiter: +1 it is, -1 it is not, 0 the bytes after it are still to come.
func matchAfter(buf, prefix []byte, atEOF bool) int {
	if len(buf) == len(prefix) {
		if atEOF {
			return +1
		}
		return 0
	}
	switch c := buf[len(prefix)]; c {
	case ' ', '\t', '\r', '\n':
		return +1
	case '-':
		if len(buf) == len(prefix)+1 {
			if atEOF {
				return -1
			}
			return 0
		}
		if buf[len(prefix)+1] == '-' {
			return +1
		}
	}
	return -1
}

// pushback reads bytes given back by unread before those of r.
type pushback struct {
	r    io.Reader
	back []byte
	off  int
	err  error // from r, returned again
}

func (p *pushback) Read(b []byte) (int, error) {
	if p.off < len(p.back) {
		n := copy(b, p.back[p.off:])
		p.off += n
		return n, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.r.Read(b)
	p.err = err // a body that failed or ended stays so
	return n, err
}

// unread gives b back, to be read before anything not yet read.
func (p *pushback) unread(b []byte) {
	if len(b) == 0 {
		return
	}
	rest := p.back[p.off:]
	if len(rest) == 0 {
		p.back = append(p.back[:0], b...)
	} else {
		p.back = append(append([]byte(nil), b...), rest...)
	}
	p.off = 0
}
