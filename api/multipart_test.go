package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// parsed is what a multipart reader made of a body: each part's headers,
// names and content, or the error that stopped it.
type parsed struct {
	Parts []parsedPart
	Err   bool
}

type parsedPart struct {
	Header         textproto.MIMEHeader
	Name, FileName string
	Content        []byte
}

// part is a part as either reader gives it.
type part interface {
	io.Reader
	FormName() string
	FileName() string
}

// collect reads the parts next returns until io.EOF, the content of the
// i-th with read(p, i).
func collect(next func() (part, textproto.MIMEHeader, error), read func(p io.Reader, i int) ([]byte, error)) parsed {
	var out parsed
	for i := 0; ; i++ {
		p, h, err := next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			out.Err = true
			return out
		}
		c, err := read(p, i)
		if err != nil {
			out.Err = true
			return out
		}
		out.Parts = append(out.Parts, parsedPart{h, p.FormName(), p.FileName(), c})
	}
}

// withStdlib parses body with mime/multipart, the reference.
func withStdlib(body []byte, boundary string) parsed {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	next := func() (part, textproto.MIMEHeader, error) {
		p, err := mr.NextPart()
		if err != nil {
			return nil, nil, err
		}
		return p, p.Header, nil
	}
	return collect(next, func(p io.Reader, _ int) ([]byte, error) { return io.ReadAll(p) })
}

// withOurs parses body with multipartReader, the body arriving in reads of
// at most the sizes in arrive and the content read into buffers of the
// sizes in bufs, each list used round and round.
func withOurs(body []byte, boundary string, arrive, bufs []int) parsed {
	mr, err := newMultipartReader(&choppy{r: bytes.NewReader(body), sizes: arrive}, boundary)
	if err != nil {
		return parsed{Err: true}
	}
	next := func() (part, textproto.MIMEHeader, error) {
		p, err := mr.NextPart()
		if err != nil {
			return nil, nil, err
		}
		return p, p.Header, nil
	}
	scratch := make([]byte, slices.Max(bufs))
	return collect(next, func(p io.Reader, i int) ([]byte, error) {
		c := []byte{} // as io.ReadAll's
		for j := 0; ; j++ {
			buf := scratch[:bufs[(i+j)%len(bufs)]]
			n, err := p.Read(buf)
			c = append(c, buf[:n]...)
			if errors.Is(err, io.EOF) {
				return c, nil
			}
			if err != nil {
				return c, err
			}
		}
	})
}

// choppy returns at most sizes[i] bytes from its i-th read, round and round.
type choppy struct {
	r     io.Reader
	sizes []int
	i     int
}

func (c *choppy) Read(p []byte) (int, error) {
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	return c.r.Read(p[:min(n, len(p))])
}

// sameAsStdlib checks that whatever mime/multipart reads whole from body,
// multipartReader reads the same, however the bytes arrive and into
// whatever buffers they are read.
func sameAsStdlib(t *testing.T, body []byte, boundary string, arrive, bufs []int) {
	t.Helper()
	want := withStdlib(body, boundary)
	got := withOurs(body, boundary, arrive, bufs)
	if want.Err {
		// Some bodies only mime/multipart refuses (header syntax it checks
		// more strictly), but the parts before the one it refuses are the
		// same.
		if n := len(want.Parts); len(got.Parts) < n || n > 0 && !reflect.DeepEqual(got.Parts[:n], want.Parts) {
			t.Fatalf("arriving in %v, read into %v, before mime/multipart's error:\n got %+v\nwant %+v\nbody %q", arrive, bufs, got, want, body)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("arriving in %v, read into %v:\n got %+v\nwant %+v\nbody %q", arrive, bufs, got, want, body)
	}
}

// formBody builds a multipart body with the boundary b from parts of the form
// "name=content" or "name;filename=content".
func formBody(b string, parts ...string) []byte {
	var s strings.Builder
	for _, p := range parts {
		name, content, _ := strings.Cut(p, "=")
		name, file, hasFile := strings.Cut(name, ";")
		fmt.Fprintf(&s, "--%s\r\nContent-Disposition: form-data; name=%q", b, name)
		if hasFile {
			fmt.Fprintf(&s, "; filename=%q\r\nContent-Type: application/octet-stream", file)
		}
		fmt.Fprintf(&s, "\r\n\r\n%s\r\n", content)
	}
	fmt.Fprintf(&s, "--%s--\r\n", b)
	return []byte(s.String())
}

var (
	arrivals = [][]int{{1 << 20}, {1}, {3, 1, 7}, {4096}, {70000, 13}, {5000, 1, 1}}
	buffers  = [][]int{{32 << 10}, {1}, {4096, 3}, {128 << 10}, {5000}}
)

func TestMultipartLikeStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte(rng.IntN(256))
	}
	// Near-boundaries inside the content, and at read edges.
	tricky := append(bytes.Repeat([]byte("x"), 4090), "\r\n--XyZa\r\n--XyZ-\r\n-\r\n--Xy\r"...)
	cases := map[string][]byte{
		"fields and a file":        formBody("XyZ", "api_key=k", "mirrors[]=1", "files[];a.bin="+string(big), "file_password=pw"),
		"near boundaries":          formBody("XyZ", "files[];t.txt="+string(tricky)+string(big[:9000]), "after=1"),
		"content ending in CR":     formBody("XyZ", "a=\r", "b=\r\n", "c=--XyZ-x"),
		"empty parts":              formBody("XyZ", "a=", "files[];e=", "b="),
		"preamble and epilogue":    append([]byte("preamble line\r\n\r\n"), append(formBody("XyZ", "a=1"), "epilogue"...)...),
		"bare LF lines":            []byte("--XyZ\nContent-Disposition: form-data; name=\"a\"\n\nv\n--XyZ\nContent-Disposition: form-data; name=\"b\"\n\nw\n--XyZ--\n"),
		"boundary right after":     []byte("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nw\r\n--XyZ--"),
		"whitespace after":         []byte("--XyZ \t\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XyZ  \r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nw\r\n--XyZ--  \r\n"),
		"quoted-printable":         []byte("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9llo=\r\n world\r\n--XyZ--\r\n"),
		"folded header":            []byte("--XyZ\r\nContent-Disposition: form-data;\r\n name=\"a\"; filename=\"dir/x.txt\"\r\n\r\nv\r\n--XyZ--\r\n"),
		"non-ASCII space in value": []byte("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: text/plain\xc2\xa0\r\nX-Note: \xe3\x80\x80x\r\n \xc2\x85y\r\n\r\nv\r\n--XyZ--\r\n"),
		"no final boundary":        formBody("XyZ", "a=1")[:len(formBody("XyZ", "a=1"))-9],
		"truncated in the content": formBody("XyZ", "files[];a.bin="+string(big))[:100000],
		"final boundary, no CRLF":  []byte("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XyZ--"),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			for _, a := range arrivals {
				for _, b := range buffers {
					sameAsStdlib(t, body, "XyZ", a, b)
					// These bodies' headers are all well formed: what
					// mime/multipart refuses, a cut body, so must ours.
					if withStdlib(body, "XyZ").Err && !withOurs(body, "XyZ", a, b).Err {
						t.Fatalf("arriving in %v, read into %v: read whole, mime/multipart refuses it", a, b)
					}
				}
			}
		})
	}
}

// A body cut inside a part is an unexpected EOF, as from mime/multipart,
// after every byte that came.
func TestMultipartTruncated(t *testing.T) {
	body := formBody("XyZ", "files[];a.bin="+strings.Repeat("z", 50000))[:30000]
	mr, err := newMultipartReader(bytes.NewReader(body), "XyZ")
	if err != nil {
		t.Fatal(err)
	}
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	c, err := io.ReadAll(p)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading a cut part: %v, want io.ErrUnexpectedEOF", err)
	}
	if want := 30000 - bytes.Index(body, []byte("zzz")); len(c) != want {
		t.Fatalf("read %d bytes of the cut part, %d came", len(c), want)
	}
}

func TestMultipartRefuses(t *testing.T) {
	long := "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: " + strings.Repeat("p", maxPartHeaderSize) + "\r\n\r\nv\r\n--XyZ--\r\n"
	for name, c := range map[string]struct{ body, boundary, want string }{
		"long headers":   {long, "XyZ", "part headers longer than"},
		"long boundary":  {"", strings.Repeat("b", maxBoundary+1), "multipart boundary of 201 bytes"},
		"no boundary":    {"", "", "without a boundary"},
		"cut after":      {"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XyZ\r\n", "XyZ", "reading part headers: EOF"},
		"junk between":   {"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XyZ--x\r\n--XyZ--", "XyZ", "expecting a new part"},
		"malformed line": {"--XyZ\r\nno colon here\r\n\r\nv\r\n--XyZ--\r\n", "XyZ", "malformed part header"},
	} {
		t.Run(name, func(t *testing.T) {
			err := func() error {
				mr, err := newMultipartReader(strings.NewReader(c.body), c.boundary)
				if err != nil {
					return err
				}
				for {
					p, err := mr.NextPart()
					if err != nil {
						return err
					}
					if _, err := io.Copy(io.Discard, p); err != nil {
						return err
					}
				}
			}()
			if err == nil || err == io.EOF || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// FuzzMultipart: whatever mime/multipart reads whole, multipartReader reads
// the same, however the body arrives.
func FuzzMultipart(f *testing.F) {
	f.Add(formBody("XyZ", "a=1", "files[];f.txt=hello\r\n--XyZx", "b="), uint8(3), uint16(4096))
	f.Add([]byte("--XyZ\nContent-Disposition: form-data; name=\"a\"\n\n--XyZ\n\nv\n--XyZ--"), uint8(1), uint16(1))
	f.Add(formBody("XyZ", "files[];f="+strings.Repeat("\r\n--Xy", 2000)), uint8(200), uint16(5000))
	f.Fuzz(func(t *testing.T, body []byte, arrive uint8, buf uint16) {
		sameAsStdlib(t, body, "XyZ", []int{int(arrive) + 1, 1 << 16}, []int{int(buf) + 1, directRead})
	})
}

// A form of many parts is refused once it has more than maxFields values,
// however short: each value read is kept until the request ends.
func TestFormManyFields(t *testing.T) {
	parts := make([]string, 50000)
	for i := range parts {
		parts[i] = "a="
	}
	body := formBody("XyZ", parts...)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/upload", bytes.NewReader(body))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=XyZ")
	f, err := readForm(r, t.TempDir(), []string{"files[]"}, 1<<20, func(url.Values) bool { return true })
	if err == nil {
		f.Close()
		t.Fatalf("a form of %d values was read whole", len(f.Values["a"]))
	}
	if want := fmt.Sprintf("more than %d form fields", maxFields); err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

// stalled returns its bytes, then (0, nil) for ever.
type stalled struct{ r io.Reader }

func (s *stalled) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if errors.Is(err, io.EOF) {
		return 0, nil
	}
	return n, err
}

// A body that stops making progress inside a part is an error, not a
// read that never returns.
func TestMultipartNoProgress(t *testing.T) {
	head := "--XyZ\r\nContent-Disposition: form-data; name=\"files[]\"; filename=\"a\"\r\n\r\n" + strings.Repeat("z", 100000)
	mr, err := newMultipartReader(&stalled{strings.NewReader(head)}, "XyZ")
	if err != nil {
		t.Fatal(err)
	}
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{p}, make([]byte, 64<<10))
	if !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("reading a part whose body stalls: %v, want io.ErrNoProgress", err)
	}
}
