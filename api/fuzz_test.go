package api

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// FuzzParseByteRange: a Range header gives the whole file, nothing, or one
// range inside the file.
func FuzzParseByteRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=10-", "bytes=-5", "bytes=0-0,5-9", "bytes=9-3", "bytes=-0",
		"bytes=99999999999999999999-", "items=0-1", "bytes= 3-4 ", ""} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		off, n, ok := parseByteRange(h, size)
		switch {
		case !ok:
			if off != 0 || n != 0 {
				t.Fatalf("parseByteRange(%q, %d) = %d, %d, false", h, size, off, n)
			}
		case n == -1:
			if off != 0 {
				t.Fatalf("parseByteRange(%q, %d): whole file from %d", h, size, off)
			}
		case off < 0 || n < 1 || off+n > size:
			t.Fatalf("parseByteRange(%q, %d) = %d, %d: outside the file", h, size, off, n)
		}
	})
}

// FuzzReadForm: any body, url-encoded or multipart, either reads within
// the form limits or is refused; nothing panics and the file streams to its
// end.
func FuzzReadForm(f *testing.F) {
	multi := "--XyZ\r\nContent-Disposition: form-data; name=\"api_key\"\r\n\r\nk\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"mirrors[]\"\r\n\r\n1\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"files[]\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"file_password\"\r\n\r\npw\r\n--XyZ--\r\n"
	f.Add("multipart/form-data; boundary=XyZ", multi, false)
	f.Add("multipart/form-data; boundary=XyZ", multi, true)
	f.Add("multipart/form-data; boundary=XyZ", multi[:len(multi)/2], true)
	f.Add("multipart/form-data", multi, false)
	f.Add("application/x-www-form-urlencoded", "api_key=k&files=a,b&mirrors%5B%5D=1", false)
	f.Add("application/x-www-form-urlencoded", "%zz=1&&=", false)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, ct, body string, stream bool) {
		r, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(body)))
		if err != nil {
			return
		}
		r.Header.Set("Content-Type", ct)
		fm, err := readForm(r, dir, []string{"files[]"}, 1<<16, func(url.Values) bool { return stream })
		if err != nil {
			return
		}
		defer fm.Close()
		check := func(v url.Values) {
			if len(v) > maxFields {
				t.Fatalf("%d fields", len(v))
			}
			for k, vals := range v {
				for _, s := range vals {
					if len(s) > maxFieldBytes {
						t.Fatalf("field %q of %d bytes", k, len(s))
					}
				}
			}
		}
		check(fm.Values)
		if fm.File != nil {
			if _, err := io.Copy(io.Discard, fm.File); err != nil {
				return
			}
			if stream {
				if after, err := fm.rest(); err == nil {
					check(after)
				}
			}
		}
	})
}
